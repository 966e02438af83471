package scanner

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/arch/x86/x86asm"
	"golang.org/x/sys/unix"
)

// The copy is a plain clone with no exit signal: not a fork the target
// could see. A child whose exit_signal is not SIGCHLD sends no signal when
// it dies and is invisible to wait(), waitpid(-1) and waitid(P_ALL)
// without __WALL/__WCLONE; lsan reaps it through the target (reapCopy).
const cloneFlags = 0

// injected is the outcome of a system call run in a stopped thread.
type injected struct {
	ret   uint64 // rax after the call
	event uint   // PTRACE_GETEVENTMSG of the ptrace event it raised, if any
}

// syscallIn runs system call nr with args in stopped thread t, from the
// syscall instruction at addr, with the extra registers set: one
// single-step, which reports the ptrace event the options ask for (the
// clone) on the way. t's registers and options are restored on every
// path; a signal that arrives for t meanwhile is kept for its detach.
func syscallIn(t *frozenThread, addr, nr uint64, args [5]uint64, extra map[x86asm.Reg]int, options int) (out injected, err error) {
	var saved unix.PtraceRegs
	if err := unix.PtraceGetRegs(t.tid, &saved); err != nil {
		return out, fmt.Errorf("read registers of thread %d: %w", t.tid, err)
	}
	regs := saved
	regs.Rip = addr
	regs.Rax = nr
	regs.Orig_rax = ^uint64(0) // no system call to restart on the way out of this stop
	regs.Rdi, regs.Rsi, regs.Rdx, regs.R10, regs.R8 = args[0], args[1], args[2], args[3], args[4]
	for r, v := range extra {
		setReg(&regs, r, uint64(v))
	}
	defer func() {
		// Whatever happened, the thread goes on as if nothing had.
		optErr := unix.PtraceSetOptions(t.tid, 0)
		regErr := unix.PtraceSetRegs(t.tid, &saved)
		if err == nil {
			err = errors.Join(optErr, regErr)
		}
	}()
	if err := unix.PtraceSetOptions(t.tid, options); err != nil {
		return out, fmt.Errorf("set ptrace options of thread %d: %w", t.tid, err)
	}
	if err := unix.PtraceSetRegs(t.tid, &regs); err != nil {
		return out, fmt.Errorf("set registers of thread %d: %w", t.tid, err)
	}
	for steps := 0; steps < 8; steps++ {
		if err := unix.PtraceSingleStep(t.tid); err != nil {
			return out, fmt.Errorf("step thread %d: %w", t.tid, err)
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(t.tid, &ws, unix.WALL, nil); err != nil {
			return out, fmt.Errorf("wait for thread %d: %w", t.tid, err)
		}
		switch {
		case ws.Exited() || ws.Signaled():
			return out, fmt.Errorf("thread %d ended in an injected system call: %w", t.tid, ErrTargetExited)
		case !ws.Stopped():
		case ws.StopSignal() == unix.SIGTRAP && ws.TrapCause() > 0:
			if out.event, err = unix.PtraceGetEventMsg(t.tid); err != nil {
				return out, fmt.Errorf("read the event of thread %d: %w", t.tid, err)
			}
		case ws.StopSignal() == unix.SIGTRAP:
			// The step is done: the thread is after the syscall.
			var after unix.PtraceRegs
			if err := unix.PtraceGetRegs(t.tid, &after); err != nil {
				return out, fmt.Errorf("read registers of thread %d: %w", t.tid, err)
			}
			out.ret = after.Rax
			return out, nil
		default:
			// A signal for the thread meanwhile: delivered at detach.
			if t.signal == 0 {
				t.signal = int(ws.StopSignal())
			}
		}
	}
	return out, errors.New("the injected system call did not complete")
}

// forkCopy makes stopped thread t clone the copy and returns the copy's
// pid, stopped and traced, set to die with lsan.
func (f *freezer) forkCopy(t *frozenThread, g exitGadget) (int, error) {
	out, err := syscallIn(t, g.addr, unix.SYS_CLONE, [5]uint64{cloneFlags}, g.regs, unix.PTRACE_O_TRACECLONE)
	child := int(out.event)
	if err == nil && int64(out.ret) < 0 {
		err = fmt.Errorf("clone failed in the target: %w", unix.Errno(-int64(out.ret)))
	}
	if err == nil && child <= 0 {
		err = errors.New("clone made no copy")
	}
	if err == nil {
		err = waitCopyStop(child)
	}
	if err == nil {
		err = unix.PtraceSetOptions(child, unix.PTRACE_O_EXITKILL)
	}
	if err != nil {
		if child > 0 {
			reapFrozen(t, child, g)
		}
		return 0, err
	}
	return child, nil
}

// reapFrozen kills the copy and reaps it through stopped thread t of its
// parent.
func reapFrozen(t *frozenThread, child int, g exitGadget) {
	killCopy(child)
	_, _ = syscallIn(t, g.addr, unix.SYS_WAIT4, [5]uint64{uint64(child), 0, unix.WALL | unix.WNOHANG}, nil, 0)
}

// reapCopy kills the copy and reaps it: lsan collects its death as its
// tracer, then the target, its parent, must wait for it too, which it
// never does for a child it did not make: the target is stopped a moment
// and made to call wait4(copy, __WALL|WNOHANG). It returns the pause.
func (f *freezer) reapCopy(child int, g exitGadget) time.Duration {
	start := time.Now()
	defer func() { _ = f.thaw(thawWait) }()
	err := f.freeze()
	t := injector(f.pid, f.stoppedThreads())
	if err != nil || t == nil {
		killCopy(child) // the target is going away: it takes the zombie with it
		return time.Since(start)
	}
	reapFrozen(t, child, g)
	return time.Since(start)
}

// waitCopyStop waits for the copy's first stop (PTRACE_O_TRACEFORK starts
// it with SIGSTOP).
func waitCopyStop(child int) error {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(child, &ws, unix.WALL|unix.WNOHANG, nil)
		if err != nil {
			return fmt.Errorf("wait for the copy %d: %w", child, err)
		}
		if wpid == child && ws.Stopped() {
			return nil
		}
		if wpid == child && (ws.Exited() || ws.Signaled()) {
			return fmt.Errorf("the copy %d died at birth", child)
		}
		time.Sleep(100 * time.Microsecond)
	}
	return fmt.Errorf("the copy %d did not stop", child)
}

// killCopy ends the copy and collects its exit as its tracer; its parent
// (the target's) then reaps it.
func killCopy(child int) {
	_ = unix.Kill(child, unix.SIGKILL)
	for i := 0; i < 1000; i++ {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(child, &ws, unix.WALL, nil)
		if err != nil || wpid == child && (ws.Exited() || ws.Signaled()) {
			return
		}
	}
}

// setReg sets a 64-bit general register in regs.
func setReg(regs *unix.PtraceRegs, r x86asm.Reg, v uint64) {
	switch r {
	case x86asm.RBX:
		regs.Rbx = v
	case x86asm.RCX:
		regs.Rcx = v
	case x86asm.RDX:
		regs.Rdx = v
	case x86asm.RBP:
		regs.Rbp = v
	case x86asm.R8:
		regs.R8 = v
	case x86asm.R9:
		regs.R9 = v
	case x86asm.R10:
		regs.R10 = v
	case x86asm.R11:
		regs.R11 = v
	case x86asm.R12:
		regs.R12 = v
	case x86asm.R13:
		regs.R13 = v
	case x86asm.R14:
		regs.R14 = v
	case x86asm.R15:
		regs.R15 = v
	}
}
