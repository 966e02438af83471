package target

import (
	"fmt"
	"strings"
)

// capSyslog reveals kernel addresses in /proc/kallsyms.
const capSyslog = 34

// CheckKernel names every capability `lsan kernel` lacks, in one error,
// or returns nil: CAP_BPF loads the programs, CAP_PERFMON attaches them to
// tracepoints and reads kernel stacks, CAP_SYSLOG shows the addresses in
// /proc/kallsyms that symbolize them (unless kernel.kptr_restrict=0 and
// perf_event_paranoid allows it anyway).
func CheckKernel() error {
	if lockdown := readSetting("/sys/kernel/security/lockdown"); strings.Contains(lockdown, "[confidentiality]") {
		return fmt.Errorf("kernel lockdown is in confidentiality mode, which forbids BPF programs from reading kernel memory; lsan kernel needs lockdown=integrity or none")
	}
	caps, err := effectiveCaps()
	if err != nil {
		return nil // loading the programs will say what fails
	}
	has := func(c uint) bool { return caps&(1<<c) != 0 }
	var missing []string
	if !has(capBPF) && !has(capSysAdmin) {
		missing = append(missing, "CAP_BPF")
	}
	if !has(capPerfmon) && !has(capSysAdmin) {
		missing = append(missing, "CAP_PERFMON")
	}
	if !has(capSyslog) && !kallsymsOpen() {
		missing = append(missing, "CAP_SYSLOG")
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("missing %s: lsan kernel traces the whole kernel; run as root (sudo lsan kernel …), or grant lsan these capabilities", strings.Join(missing, ", "))
}

// kallsymsOpen: kernel.kptr_restrict=0 and perf_event_paranoid <= 1 show
// /proc/kallsyms' addresses without CAP_SYSLOG.
func kallsymsOpen() bool {
	p := readSetting(procRoot + "/sys/kernel/perf_event_paranoid")
	return readSetting(procRoot+"/sys/kernel/kptr_restrict") == "0" && (p == "-1" || p == "0" || p == "1")
}
