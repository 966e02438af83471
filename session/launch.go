package session

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/lsan-project/lsan/internal/procmaps"
)

// ErrNotFound and ErrNotExecutable are a command lsan run cannot start;
// the shell's statuses for them are 127 and 126.
var (
	ErrNotFound      = errors.New("command not found")
	ErrNotExecutable = errors.New("permission denied")
)

// Launch starts path with args (argv[0] included), stdio inherited, and
// holds it, once its libraries are mapped and before any of their code
// (constructors included) or the program's has run, while ready runs (lsan
// attaches its probes there). Then the child runs on, untraced. extra
// adds to its environment and descriptors. A failure kills the child.
func Launch(path string, args []string, extra Extras, ready func(pid int) error) (*os.Process, error) {
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
	if len(extra.Env) > 0 {
		cmd.Env = append(os.Environ(), extra.Env...)
	}
	cmd.ExtraFiles = extra.Files
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Ptrace: true}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, unix.ENOEXEC) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("%s: %w (%v)", path, ErrNotExecutable, errors.Unwrap(err))
		}
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	pid := cmd.Process.Pid
	if err := runToStart(pid); err != nil {
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

// Extras are what lsan gives a command besides its own environment:
// variables, and descriptors from 3 on.
type Extras struct {
	Env   []string
	Files []*os.File
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

// runToStart takes the child from its stop after execve to the point
// where its libraries are mapped and nothing of theirs has run: the dynamic
// linker's debugger hook (_dl_debug_state), called once the link map is
// consistent and before the libraries' constructors, so that allocations
// made by those are tracked too. A static program, or a loader without the
// hook, is stopped at its entry point instead.
func runToStart(pid int) error {
	if err := waitTrap(pid); err != nil {
		return fmt.Errorf("wait for exec: %w", err)
	}
	aux, err := readAuxv(pid)
	if err != nil {
		return err
	}
	if hook, ok := findLoaderHook(pid, aux[atBase]); ok {
		if err := runToConsistentLinkMap(pid, hook); err == nil {
			return nil
		} else if !errors.Is(err, errNoHookStop) {
			return err
		}
	}
	if aux[atEntry] == 0 {
		return fmt.Errorf("pid %d: no AT_ENTRY in auxv", pid)
	}
	return runToBreakpoint(pid, aux[atEntry])
}

// loaderHook is where the dynamic linker tells debuggers that its link
// map changed, and the r_debug structure that says how.
type loaderHook struct {
	debugState uint64 // _dl_debug_state
	rDebug     uint64 // _r_debug
}

// r_debug's r_state (after int r_version, a pointer and an address) and
// its value once every object is mapped.
const (
	rStateOffset = 24
	rtConsistent = 0
)

// errNoHookStop: the hook never reported a consistent link map.
var errNoHookStop = errors.New("the dynamic linker's hook never reported a consistent link map")

// findLoaderHook locates the hook in the dynamic linker mapped at base
// (AT_BASE; 0 for a static program).
func findLoaderHook(pid int, base uint64) (loaderHook, bool) {
	m, ok := mappingAt(pid, base)
	if !ok {
		return loaderHook{}, false
	}
	f, err := elf.Open(procmaps.OpenPath(pid, m))
	if err != nil {
		return loaderHook{}, false
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		return loaderHook{}, false
	}
	bias := base - lowestLoadAddr(f)
	var h loaderHook
	for _, s := range syms {
		switch s.Name {
		case "_dl_debug_state":
			h.debugState = bias + s.Value
		case "_r_debug":
			h.rDebug = bias + s.Value
		}
	}
	return h, h.debugState != 0 && h.rDebug != 0
}

func lowestLoadAddr(f *elf.File) uint64 {
	low := ^uint64(0)
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Vaddr < low {
			low = p.Vaddr
		}
	}
	if low == ^uint64(0) {
		return 0
	}
	return low &^ 0xfff
}

// mappingAt is the file mapping that starts at addr in pid.
func mappingAt(pid int, addr uint64) (procmaps.Mapping, bool) {
	if addr == 0 {
		return procmaps.Mapping{}, false
	}
	maps, err := procmaps.Read(pid)
	if err != nil {
		return procmaps.Mapping{}, false
	}
	for _, m := range maps {
		if m.Start == addr && m.FileBacked() {
			return m, true
		}
	}
	return procmaps.Mapping{}, false
}

// runToConsistentLinkMap stops the child in the hook each time it is
// called until r_debug says every object is mapped. glibc calls it twice at
// start-up: when it begins adding objects, and when they are all there.
func runToConsistentLinkMap(pid int, h loaderHook) error {
	state := make([]byte, 4)
	for calls := 0; calls < 8; calls++ {
		if err := runToBreakpoint(pid, h.debugState); err != nil {
			return err
		}
		if _, err := unix.PtracePeekData(pid, uintptr(h.rDebug+rStateOffset), state); err != nil {
			return fmt.Errorf("read r_debug: %w", err)
		}
		if binary.LittleEndian.Uint32(state) == rtConsistent {
			return nil
		}
		// Step over the hook's first instruction, so that the breakpoint
		// can go back for the next call.
		if err := unix.PtraceSingleStep(pid); err != nil {
			return err
		}
		if err := waitTrap(pid); err != nil {
			return err
		}
	}
	return errNoHookStop
}

// runToBreakpoint runs the child to addr with a one-shot breakpoint and
// leaves it stopped there, its code restored, about to execute addr.
func runToBreakpoint(pid int, addr uint64) error {
	word := make([]byte, len(breakpoint))
	if _, err := unix.PtracePeekText(pid, uintptr(addr), word); err != nil {
		return fmt.Errorf("read code at %#x: %w", addr, err)
	}
	orig := append([]byte(nil), word...)
	if _, err := unix.PtracePokeText(pid, uintptr(addr), breakpoint); err != nil {
		return fmt.Errorf("set breakpoint at %#x: %w", addr, err)
	}
	if err := unix.PtraceCont(pid, 0); err != nil {
		return err
	}
	if err := waitTrap(pid); err != nil {
		return fmt.Errorf("run to %#x: %w", addr, err)
	}
	if _, err := unix.PtracePokeText(pid, uintptr(addr), orig); err != nil {
		return fmt.Errorf("remove breakpoint at %#x: %w", addr, err)
	}
	var regs unix.PtraceRegs
	if err := unix.PtraceGetRegs(pid, &regs); err != nil {
		return err
	}
	setPC(&regs, addr)
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

// Auxiliary vector keys: the dynamic linker's base, the program's entry.
const (
	atBase  = 7
	atEntry = 9
)

// readAuxv reads the child's auxiliary vector.
func readAuxv(pid int) (map[uint64]uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/auxv", pid))
	if err != nil {
		return nil, fmt.Errorf("read auxv of pid %d: %w", pid, err)
	}
	aux := map[uint64]uint64{}
	for i := 0; i+16 <= len(data); i += 16 {
		aux[binary.LittleEndian.Uint64(data[i:])] = binary.LittleEndian.Uint64(data[i+8:])
	}
	return aux, nil
}
