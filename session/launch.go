package session

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrNotFound and ErrNotExecutable are a command lsan run cannot start;
// the shell's statuses for them are 127 and 126.
var (
	ErrNotFound      = errors.New("command not found")
	ErrNotExecutable = errors.New("permission denied")
)

// Launch starts path with args (argv[0] included), stdio inherited, and
// holds it at its entry point — the executable's first instruction, after
// the dynamic loader has mapped its libraries — while ready runs (lsan
// attaches its probes there). Then the child runs on, untraced. A failure
// kills the child.
func Launch(path string, args []string, ready func(pid int) error) (*os.Process, error) {
	resolved, err := lookPath(path)
	if err != nil {
		return nil, err
	}
	// Every ptrace request for the child must come from the thread that
	// started it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cmd := exec.Command(resolved)
	cmd.Args = args
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, unix.ENOEXEC) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("%s: %w (%v)", path, ErrNotExecutable, errors.Unwrap(err))
		}
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	pid := cmd.Process.Pid
	if err := runToEntry(pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	if err := ready(pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	if err := unix.PtraceDetach(pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("release %s: %w", path, err)
	}
	return cmd.Process, nil
}

// lookPath resolves a command as a shell does, with the shell's errors.
func lookPath(path string) (string, error) {
	resolved, err := exec.LookPath(path)
	if err == nil {
		return resolved, nil
	}
	if errors.Is(err, os.ErrPermission) {
		return "", fmt.Errorf("%s: %w", path, ErrNotExecutable)
	}
	if st, serr := os.Stat(path); serr == nil && !st.IsDir() {
		return "", fmt.Errorf("%s: %w", path, ErrNotExecutable)
	}
	return "", fmt.Errorf("%s: %w", path, ErrNotFound)
}

// runToEntry takes the child from its stop after execve to the entry
// point of the executable, with a one-shot breakpoint.
func runToEntry(pid int) error {
	if err := waitTrap(pid); err != nil {
		return fmt.Errorf("wait for exec: %w", err)
	}
	entry, err := auxvEntry(pid)
	if err != nil {
		return err
	}
	word := make([]byte, 8)
	if _, err := unix.PtracePeekText(pid, uintptr(entry), word); err != nil {
		return fmt.Errorf("read entry point: %w", err)
	}
	orig := append([]byte(nil), word...)
	copy(word, breakpoint)
	if _, err := unix.PtracePokeText(pid, uintptr(entry), word); err != nil {
		return fmt.Errorf("set entry breakpoint: %w", err)
	}
	if err := unix.PtraceCont(pid, 0); err != nil {
		return err
	}
	if err := waitTrap(pid); err != nil {
		return fmt.Errorf("wait for entry point: %w", err)
	}
	if _, err := unix.PtracePokeText(pid, uintptr(entry), orig); err != nil {
		return fmt.Errorf("remove entry breakpoint: %w", err)
	}
	var regs unix.PtraceRegs
	if err := unix.PtraceGetRegs(pid, &regs); err != nil {
		return err
	}
	setPC(&regs, entry)
	return unix.PtraceSetRegs(pid, &regs)
}

// waitTrap waits for the child's next SIGTRAP stop, passing on any other
// signal it receives meanwhile.
func waitTrap(pid int) error {
	for {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		switch {
		case ws.Exited():
			return fmt.Errorf("the command exited with status %d before it started", ws.ExitStatus())
		case ws.Signaled():
			return fmt.Errorf("the command was killed by %v before it started", ws.Signal())
		case ws.Stopped() && ws.StopSignal() == unix.SIGTRAP:
			return nil
		case ws.Stopped():
			if err := unix.PtraceCont(pid, int(ws.StopSignal())); err != nil {
				return err
			}
		}
	}
}

// auxvEntry reads AT_ENTRY, the executable's entry point, from the
// child's auxiliary vector.
func auxvEntry(pid int) (uint64, error) {
	const atEntry = 9
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/auxv", pid))
	if err != nil {
		return 0, err
	}
	for i := 0; i+16 <= len(data); i += 16 {
		if binary.LittleEndian.Uint64(data[i:]) == atEntry {
			return binary.LittleEndian.Uint64(data[i+8:]), nil
		}
	}
	return 0, fmt.Errorf("pid %d: no AT_ENTRY in auxv", pid)
}
