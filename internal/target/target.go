package target

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// Need says which privileges a mode of lsan needs beyond BPF.
type Need int

const (
	// NeedBPF: load BPF programs and attach uprobes (outstanding mode).
	NeedBPF Need = iota
	// NeedPtrace: also freeze and read the target (leaks mode).
	NeedPtrace
)

// procRoot is where procfs is mounted.
var procRoot = "/proc"

// pfKthread is PF_KTHREAD in the flags field of /proc/PID/stat.
const pfKthread = 0x00200000

// Check reports why lsan cannot check process pid, or nil.
func Check(pid int, need Need) error {
	if err := checkProcess(pid); err != nil {
		return err
	}
	if err := checkPrivileges(pid, need); err != nil {
		return err
	}
	if need == NeedPtrace {
		if tracer := Tracer(pid); tracer != "" {
			return fmt.Errorf("pid %d is already traced by %s; detach that debugger or tracer first", pid, tracer)
		}
	}
	return nil
}

// checkProcess names what pid is when it is not a process lsan can check.
func checkProcess(pid int) error {
	st, err := readStatus(pid)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no process with pid %d", pid)
	}
	if err != nil {
		return fmt.Errorf("read /proc/%d/status: %w", pid, err)
	}
	self := os.Getpid()
	if pid == self || st.tgid == self {
		return errors.New("lsan cannot check itself")
	}
	if st.tgid != 0 && st.tgid != pid {
		return fmt.Errorf("pid %d is a thread of process %d; use -p %d", pid, st.tgid, st.tgid)
	}
	if strings.HasPrefix(st.state, "Z") || strings.HasPrefix(st.state, "X") {
		return fmt.Errorf("pid %d has exited (zombie); its parent has not collected it yet", pid)
	}
	if kthread, err := isKernelThread(pid); err == nil && kthread {
		return fmt.Errorf("pid %d is a kernel thread; it has no user memory to check", pid)
	}
	return nil
}

// status is what lsan needs of /proc/PID/status.
type status struct {
	name      string
	state     string
	tgid      int
	tracerPid int
	uid       int // real uid
}

func readStatus(pid int) (status, error) {
	data, err := os.ReadFile(fmt.Sprintf("%s/%d/status", procRoot, pid))
	if err != nil {
		return status{}, err
	}
	var st status
	for _, line := range strings.Split(string(data), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "Name":
			st.name = val
		case "State":
			st.state = val
		case "Tgid":
			st.tgid, _ = strconv.Atoi(val)
		case "TracerPid":
			st.tracerPid, _ = strconv.Atoi(val)
		case "Uid":
			if f := strings.Fields(val); len(f) > 0 {
				st.uid, _ = strconv.Atoi(f[0])
			}
		}
	}
	return st, nil
}

// isKernelThread reads PF_KTHREAD from /proc/PID/stat: a kernel thread has
// no address space, so nothing of it can be probed or scanned.
func isKernelThread(pid int) (bool, error) {
	data, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", procRoot, pid))
	if err != nil {
		return false, err
	}
	// The command name may hold spaces and parentheses: the fields start
	// after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return false, errors.New("malformed stat")
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 7 {
		return false, errors.New("malformed stat")
	}
	flags, err := strconv.ParseUint(fields[6], 10, 64)
	if err != nil {
		return false, err
	}
	return flags&pfKthread != 0, nil
}

// Tracer names the process already tracing pid ("process 812 (gdb)"), or
// "" when none does. TracerPid is a thread of the tracer; users know the
// tracer by its process.
func Tracer(pid int) string {
	st, err := readStatus(pid)
	if err != nil || st.tracerPid == 0 {
		return ""
	}
	tracer, err := readStatus(st.tracerPid)
	if err != nil {
		return fmt.Sprintf("process %d", st.tracerPid)
	}
	proc := st.tracerPid
	if tracer.tgid != 0 {
		proc = tracer.tgid
	}
	if proc != st.tracerPid {
		if leader, err := readStatus(proc); err == nil {
			tracer.name = leader.name
		}
	}
	return fmt.Sprintf("process %d (%s)", proc, tracer.name)
}
