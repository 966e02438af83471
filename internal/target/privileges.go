package target

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Capability numbers (linux/capability.h).
const (
	capSysPtrace = 19
	capSysAdmin  = 21
	capPerfmon   = 38
	capBPF       = 39
)

// checkPrivileges names every capability and system setting that keeps
// lsan from checking pid, in one error, or returns nil. What each is for:
// CAP_BPF loads the programs and maps, CAP_PERFMON attaches the uprobes,
// CAP_SYS_PTRACE opens another user's process (its files, its memory) and
// freezes it for a leak check.
func checkPrivileges(pid int, need Need) error {
	if lockdown := readSetting("/sys/kernel/security/lockdown"); strings.Contains(lockdown, "[confidentiality]") {
		return fmt.Errorf("kernel lockdown is in confidentiality mode, which forbids BPF programs from reading memory; lsan needs lockdown=integrity or none")
	}
	caps, err := effectiveCaps()
	if err != nil {
		return nil // the attach itself will say what fails
	}
	has := func(c uint) bool { return caps&(1<<c) != 0 }
	var missing, settings []string
	// The kernel accepts CAP_SYS_ADMIN in place of CAP_BPF and CAP_PERFMON.
	if !has(capBPF) && !has(capSysAdmin) {
		missing = append(missing, "CAP_BPF")
		if v := readSetting(procRoot + "/sys/kernel/unprivileged_bpf_disabled"); v != "" && v != "0" {
			settings = append(settings, "kernel.unprivileged_bpf_disabled="+v)
		}
	}
	if !has(capPerfmon) && !has(capSysAdmin) {
		missing = append(missing, "CAP_PERFMON")
		if v := readSetting(procRoot + "/sys/kernel/perf_event_paranoid"); v != "" && v != "-1" {
			settings = append(settings, "kernel.perf_event_paranoid="+v)
		}
	}
	yama := readSetting(procRoot + "/sys/kernel/yama/ptrace_scope")
	if yama == "3" {
		return fmt.Errorf("kernel.yama.ptrace_scope=3 forbids every ptrace attach, even by root; lsan needs 2 or less (it cannot be lowered without a reboot)")
	}
	if !has(capSysPtrace) && needsPtraceCap(pid, need, yama) {
		missing = append(missing, "CAP_SYS_PTRACE")
		if yama == "1" || yama == "2" {
			settings = append(settings, "kernel.yama.ptrace_scope="+yama)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	msg := "missing " + strings.Join(missing, ", ")
	if len(settings) > 0 {
		msg += " (" + strings.Join(settings, ", ") + " allow nothing without them)"
	}
	return fmt.Errorf("%s: run as root (sudo lsan …), or grant lsan these capabilities", msg)
}

// needsPtraceCap: without CAP_SYS_PTRACE, lsan may still open a process of
// its own user, unless Yama restricts ptrace to descendants (1) or to
// CAP_SYS_PTRACE (2) and a leak check has to freeze it.
func needsPtraceCap(pid int, need Need, yama string) bool {
	st, err := readStatus(pid)
	if err != nil || st.uid != os.Getuid() {
		return true
	}
	return need == NeedPtrace && (yama == "1" || yama == "2")
}

// effectiveCaps is CapEff of lsan itself.
func effectiveCaps() (uint64, error) {
	data, err := os.ReadFile(procRoot + "/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("no CapEff in /proc/self/status")
}

// readSetting is the trimmed content of a sysctl or sysfs file, or "".
func readSetting(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}
