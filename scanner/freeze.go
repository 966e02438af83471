package scanner

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The freeze stops every thread of the target with PTRACE_SEIZE +
// PTRACE_INTERRUPT, which stops a thread without sending it a signal, so
// nothing of the target's signal state changes. Every ptrace request for a
// tracee must come from the OS thread that seized it: the freezer is used
// from one goroutine locked to its thread (see Check).

const (
	// maxFreezeRounds bounds the relisting of /proc/PID/task: a process
	// that creates threads faster than they can be stopped would otherwise
	// keep the freeze going forever. LSan relists up to 30 times; stopping
	// a thread prevents it from creating more, so few rounds are needed.
	maxFreezeRounds = 100
	// statusCheckEvery is how often threads that have not reported a stop
	// are looked up in /proc: they may have exited without a report we can
	// see, or their stop report may have been consumed by another thread
	// of this process waiting on the same child.
	statusCheckEvery = 20 * time.Millisecond
	defaultTimeout   = 10 * time.Second
	// xstateBufSize holds the largest XSAVE area (AMX tiles included).
	xstateBufSize = 64 << 10
)

// x86-64 register sets for PTRACE_GETREGSET.
const (
	ntPRFPREG   = 2     // NT_PRFPREG: the FXSAVE area, xmm0-15
	ntX86XSTATE = 0x202 // NT_X86_XSTATE: the XSAVE area, ymm/zmm included
)

// testHookAfterSeize, when set by a test, runs between PTRACE_SEIZE and
// PTRACE_INTERRUPT: widening that window lets signals arrive as
// signal-delivery-stops.
var testHookAfterSeize func(tid int)

// frozenThread is a thread the freezer has seized.
type frozenThread struct {
	tid     int
	stopped bool // a stop was seen; until then an interrupt is pending
	// signal is the signal the thread was about to receive when it
	// stopped (a signal-delivery-stop); it is delivered at detach, so no
	// signal is ever swallowed. 0 for interrupt and group stops.
	signal  int
	regs    unix.PtraceRegs
	hasRegs bool
	// fpWords are the words of the FP/vector registers that could be
	// pointers: compilers keep pointers in xmm registers.
	fpWords []uint64
}

// sp is the thread's stack pointer.
func (t *frozenThread) sp() uint64 { return stackPointer(&t.regs) }

// registerWords returns every register word that could be a pointer.
func (t *frozenThread) registerWords() []uint64 {
	if !t.hasRegs {
		return nil
	}
	n := int(unsafe.Sizeof(t.regs)) / 8
	gprs := unsafe.Slice((*uint64)(unsafe.Pointer(&t.regs)), n)
	out := make([]uint64, 0, n+len(t.fpWords))
	out = append(out, gprs...)
	return append(out, t.fpWords...)
}

// freezer stops and resumes the threads of one process.
type freezer struct {
	pid     int
	timeout time.Duration
	threads map[int]*frozenThread // every seized thread
	order   []int                 // seize order, for stable output
	// unseizable are threads that are exiting (zombie, dead): they run no
	// code any more and ptrace refuses them.
	unseizable map[int]bool
	// zombies are threads that died while traced, still to be reaped.
	zombies   []int
	rounds    int
	signals   int
	firstStop time.Time
}

func newFreezer(pid int, timeout time.Duration) *freezer {
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	return &freezer{
		pid:        pid,
		timeout:    timeout,
		threads:    map[int]*frozenThread{},
		unseizable: map[int]bool{},
	}
}

// freeze stops every thread of the process. New threads may appear while
// it works: it lists /proc/PID/task again until a listing shows no thread
// it has not seized. Once a thread is stopped it cannot create threads,
// so this converges. On error, the threads seized so far stay seized:
// the caller must call thaw.
func (f *freezer) freeze() error {
	deadline := time.Now().Add(f.timeout)
	for {
		tids, err := listTasks(f.pid)
		if err != nil {
			return err
		}
		var fresh []int
		for _, tid := range tids {
			if f.threads[tid] == nil && !f.unseizable[tid] {
				fresh = append(fresh, tid)
			}
		}
		if len(fresh) == 0 {
			break
		}
		f.rounds++
		if f.rounds > maxFreezeRounds {
			return fmt.Errorf("freeze pid %d: threads kept appearing after %d listings of /proc/%d/task", f.pid, maxFreezeRounds, f.pid)
		}
		for _, tid := range fresh {
			if err := f.seize(tid); err != nil {
				return err
			}
		}
		if err := f.waitStops(deadline); err != nil {
			return err
		}
	}
	if len(f.threads) == 0 {
		return fmt.Errorf("freeze pid %d: no live thread: %w", f.pid, ErrTargetExited)
	}
	return nil
}

// seize attaches to one thread and asks it to stop.
func (f *freezer) seize(tid int) error {
	if f.firstStop.IsZero() {
		f.firstStop = time.Now()
	}
	err := unix.PtraceSeize(tid)
	switch {
	case err == nil:
	case errors.Is(err, unix.ESRCH):
		return nil // the thread exited since the listing
	case errors.Is(err, unix.EPERM):
		return f.explainSeizeEPERM(tid, err)
	default:
		return fmt.Errorf("seize thread %d of pid %d: %w", tid, f.pid, err)
	}
	f.threads[tid] = &frozenThread{tid: tid}
	f.order = append(f.order, tid)
	if testHookAfterSeize != nil {
		testHookAfterSeize(tid)
	}
	if err := unix.PtraceInterrupt(tid); err != nil && !errors.Is(err, unix.ESRCH) {
		// ESRCH: the thread is exiting; waitStops sees it go.
		return fmt.Errorf("interrupt thread %d of pid %d: %w", tid, f.pid, err)
	}
	return nil
}

// explainSeizeEPERM turns EPERM from PTRACE_SEIZE into what the user must
// know: an exiting thread (not an error), another tracer, or missing
// privileges.
func (f *freezer) explainSeizeEPERM(tid int, err error) error {
	st, serr := readTaskStatus(f.pid, tid)
	if serr != nil || st.State == 'Z' || st.State == 'X' {
		f.unseizable[tid] = true
		return nil
	}
	if st.TracerPID != 0 {
		return &TracedError{PID: f.pid, TID: tid, TracerPID: st.TracerPID}
	}
	// A thread in the middle of exiting can refuse before it shows as a
	// zombie: give it a moment.
	time.Sleep(time.Millisecond)
	if threadGone(f.pid, tid) {
		f.unseizable[tid] = true
		return nil
	}
	return fmt.Errorf("seize thread %d of pid %d: %w: %s", tid, f.pid, err, permissionHint())
}

// permissionHint says what ptrace needs on this system.
func permissionHint() string {
	hint := "stopping another process needs CAP_SYS_PTRACE (or the same user as the target)"
	if data, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil {
		switch strings.TrimSpace(string(data)) {
		case "1":
			hint += "; kernel.yama.ptrace_scope=1 also requires CAP_SYS_PTRACE (or the target to be a descendant of lsan)"
		case "2":
			hint += "; kernel.yama.ptrace_scope=2 allows it only with CAP_SYS_PTRACE"
		case "3":
			hint += "; kernel.yama.ptrace_scope=3 forbids ptrace attach entirely (until reboot)"
		}
	}
	return hint + "; a security module (AppArmor, SELinux) or a user namespace may also deny it"
}

// waitStops waits until every seized thread has stopped or is gone.
func (f *freezer) waitStops(deadline time.Time) error {
	backoff := 10 * time.Microsecond
	lastStatus := time.Now()
	for {
		pending := 0
		progress := false
		for _, tid := range f.order {
			t := f.threads[tid]
			if t == nil || t.stopped {
				continue
			}
			changed, err := f.poll(t)
			if err != nil {
				return err
			}
			if changed {
				progress = true
			} else {
				pending++
			}
		}
		if pending == 0 {
			return nil
		}
		if progress {
			backoff = 10 * time.Microsecond
			continue
		}
		now := time.Now()
		if now.Sub(lastStatus) >= statusCheckEvery {
			lastStatus = now
			f.checkPendingStatus()
		}
		if now.After(deadline) {
			return f.stopTimeout()
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Millisecond)
	}
}

// poll collects one thread's state change, if any. changed is true when
// the thread stopped or is gone.
func (f *freezer) poll(t *frozenThread) (changed bool, err error) {
	var status int // wait4-style: 0x7f | sig<<8 | event<<16
	if t.tid == f.pid {
		// The group leader's exit status belongs to its parent, which may
		// be this very process (a target lsan started): look before
		// consuming anything, and consume only a stop, never an exit.
		exited, waiting, err := peekLeader(t.tid)
		if err != nil {
			return false, err
		}
		if exited {
			f.bury(t.tid)
			return true, nil
		}
		if !waiting {
			return false, nil
		}
		st, ok, err := consumeStop(t.tid)
		if err != nil || !ok {
			return false, err
		}
		status = st
	} else {
		var ws unix.WaitStatus
		for {
			wpid, err := unix.Wait4(t.tid, &ws, unix.WNOHANG|unix.WALL, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.ECHILD) {
				f.forget(t.tid) // reaped or detached by someone else: gone
				return true, nil
			}
			if err != nil {
				return false, fmt.Errorf("wait for thread %d of pid %d: %w", t.tid, f.pid, err)
			}
			if wpid == 0 {
				return false, nil
			}
			break
		}
		if ws.Exited() || ws.Signaled() {
			f.forget(t.tid)
			return true, nil
		}
		if !ws.Stopped() {
			return false, nil
		}
		status = int(ws)
	}
	sig := (status >> 8) & 0xff
	event := (status >> 16) & 0xff
	t.stopped = true
	if event == 0 {
		// A signal-delivery-stop: the thread was about to receive sig.
		// Hold it; it is delivered when we detach.
		t.signal = sig
		f.signals++
	}
	// event == PTRACE_EVENT_STOP: our interrupt (SIGTRAP), or a group-stop
	// (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU) if the process was being
	// stopped. Nothing to deliver: at detach the kernel puts a thread of a
	// stopped process back into group-stop.
	return true, nil
}

// consumeStop takes a reported stop of tid with waitid(WSTOPPED), which
// cannot consume an exit, and returns it wait4-style.
func consumeStop(tid int) (status int, ok bool, err error) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, tid, &info, unix.WSTOPPED|unix.WNOHANG|unix.WALL, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ECHILD) {
			return 0, false, nil
		}
		if err != nil {
			return 0, false, fmt.Errorf("wait for thread %d: %w", tid, err)
		}
		if siginfoPID(&info) == 0 {
			return 0, false, nil
		}
		// For a ptrace stop si_status is the stop's code: the signal,
		// with the ptrace event in the next byte.
		code := int(siginfoStatus(&info))
		return 0x7f | (code&0xffff)<<8, true, nil
	}
}

// peekLeader looks at the group leader's pending wait state without
// consuming it.
func peekLeader(tid int) (exited, waiting bool, err error) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, tid, &info, unix.WEXITED|unix.WSTOPPED|unix.WNOHANG|unix.WNOWAIT|unix.WALL, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ECHILD) {
			return true, false, nil
		}
		if err != nil {
			return false, false, fmt.Errorf("wait for thread %d: %w", tid, err)
		}
		if siginfoPID(&info) == 0 {
			return false, false, nil
		}
		switch info.Code {
		case cldExited, cldKilled, cldDumped:
			return true, false, nil
		}
		return false, true, nil
	}
}

// si_code values of SIGCHLD.
const (
	cldExited = 1
	cldKilled = 2
	cldDumped = 3
)

// siginfoPID reads si_pid, which waitid leaves 0 when no child changed
// state.
func siginfoPID(info *unix.Siginfo) int32 {
	// si_pid follows si_signo, si_errno, si_code and padding to 8 bytes.
	return *(*int32)(unsafe.Add(unsafe.Pointer(info), 16))
}

// siginfoStatus reads si_status (after si_pid and si_uid).
func siginfoStatus(info *unix.Siginfo) int32 {
	return *(*int32)(unsafe.Add(unsafe.Pointer(info), 24))
}

// checkPendingStatus looks up in /proc the threads that have not reported:
// gone ones are forgotten, and ones in a tracing stop are taken as stopped:
// another thread of this process consumed the report (when the target is
// this process's child, the kernel hands ptrace stops to the parent's
// waits too). The kind of stop is then asked with PTRACE_GETSIGINFO, so
// that a signal-delivery-stop's signal is still delivered at detach.
func (f *freezer) checkPendingStatus() {
	for _, tid := range f.order {
		t := f.threads[tid]
		if t == nil || t.stopped {
			continue
		}
		st, err := readTaskStatus(f.pid, tid)
		switch {
		case err != nil || st.State == 'Z' || st.State == 'X':
			f.bury(tid)
		case st.State == 't':
			t.stopped = true
			if sig := pendingDeliverySignal(tid); sig != 0 {
				t.signal = sig
				f.signals++
			}
		}
	}
}

// pendingDeliverySignal returns the signal of a tracee in a
// signal-delivery-stop, 0 for any other stop. PTRACE_GETSIGINFO fails
// (EINVAL) in a group-stop and reports SIGTRAP with the event in si_code
// in a PTRACE_EVENT stop such as our interrupt.
func pendingDeliverySignal(tid int) int {
	var info unix.Siginfo
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETSIGINFO, uintptr(tid), 0, uintptr(unsafe.Pointer(&info)), 0, 0)
	if errno != 0 {
		return 0
	}
	if info.Signo == int32(unix.SIGTRAP) && info.Code>>8 != 0 {
		return 0 // a PTRACE_EVENT stop
	}
	return int(info.Signo)
}

func (f *freezer) stopTimeout() error {
	var stuck []string
	for _, tid := range f.order {
		t := f.threads[tid]
		if t == nil || t.stopped {
			continue
		}
		state := "?"
		if st, err := readTaskStatus(f.pid, tid); err == nil {
			state = string(st.State)
		}
		stuck = append(stuck, fmt.Sprintf("%d (state %s)", tid, state))
		if len(stuck) == 5 {
			stuck = append(stuck, "…")
			break
		}
	}
	return fmt.Errorf("freeze pid %d: threads did not stop within %v: %s (a thread in uninterruptible sleep stops only when it wakes)",
		f.pid, f.timeout, strings.Join(stuck, ", "))
}

// forget drops a thread that is gone.
func (f *freezer) forget(tid int) {
	delete(f.threads, tid)
}

// readRegisters reads every stopped thread's registers. A thread that dies
// meanwhile (SIGKILL ends even a stopped thread) is forgotten.
func (f *freezer) readRegisters() error {
	xbuf := make([]byte, xstateBufSize)
	for _, tid := range f.order {
		t := f.threads[tid]
		if t == nil || !t.stopped {
			continue
		}
		if err := unix.PtraceGetRegs(tid, &t.regs); err != nil {
			if errors.Is(err, unix.ESRCH) {
				f.bury(tid)
				continue
			}
			return fmt.Errorf("read registers of thread %d of pid %d: %w", tid, f.pid, err)
		}
		t.hasRegs = true
		t.fpWords = pointerWords(readFPState(tid, xbuf))
	}
	return nil
}

// readFPState returns the thread's XSAVE area (or its FXSAVE area where
// XSAVE is not available); nil if neither can be read.
func readFPState(tid int, buf []byte) []byte {
	for _, note := range []int{ntX86XSTATE, ntPRFPREG} {
		iov := unix.Iovec{Base: &buf[0]}
		iov.SetLen(len(buf))
		_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETREGSET, uintptr(tid), uintptr(note),
			uintptr(unsafe.Pointer(&iov)), 0, 0)
		if errno == 0 {
			return buf[:iov.Len]
		}
	}
	return nil
}

// pointerWords keeps the 8-byte words of b that pass the pointer filter.
func pointerWords(b []byte) []uint64 {
	var out []uint64
	for i := 0; i+8 <= len(b); i += 8 {
		w := uint64(b[i]) | uint64(b[i+1])<<8 | uint64(b[i+2])<<16 | uint64(b[i+3])<<24 |
			uint64(b[i+4])<<32 | uint64(b[i+5])<<40 | uint64(b[i+6])<<48 | uint64(b[i+7])<<56
		if maybeUserPointer(w) {
			out = append(out, w)
		}
	}
	return out
}

// stoppedThreads returns the threads that are stopped, in seize order.
func (f *freezer) stoppedThreads() []*frozenThread {
	var out []*frozenThread
	for _, tid := range f.order {
		if t := f.threads[tid]; t != nil && t.stopped {
			out = append(out, t)
		}
	}
	return out
}

// thaw detaches every stopped thread, delivering held signals. It goes on
// after errors and returns the first one. A seized thread that has not
// stopped yet (interrupt pending) cannot be detached: it gets up to wait
// to stop; one that still has not stays seized, and the tracer detaches
// it as soon as it stops (see tracerLoop).
func (f *freezer) thaw(wait time.Duration) error {
	if f.hasPending() {
		if wait > 0 {
			_ = f.waitStops(time.Now().Add(wait))
		} else {
			f.pollPending()
		}
	}
	var first error
	for _, tid := range f.order {
		t := f.threads[tid]
		if t == nil || !t.stopped {
			continue
		}
		err := ptraceDetach(tid, t.signal)
		switch {
		case errors.Is(err, unix.ESRCH):
			// It died while stopped (SIGKILL): nothing to resume, a
			// zombie to reap.
			f.bury(tid)
		case err != nil && first == nil:
			first = fmt.Errorf("detach thread %d of pid %d: %w", tid, f.pid, err)
		}
		delete(f.threads, tid)
	}
	f.compact()
	f.reapZombies()
	return first
}

// bury forgets a thread that died while we traced it. A dead tracee stays
// a zombie that only its tracer can reap, and a process cannot be reaped
// by its parent while one of its threads is such a zombie: it is reaped
// (see reapZombies).
func (f *freezer) bury(tid int) {
	f.forget(tid)
	f.zombies = append(f.zombies, tid)
}

// reapZombies reaps the dead tracees that are zombies by now; the others
// are tried again later (by the tracer). The group leader is special: if
// this process is its parent (a target lsan started), reaping it would
// take its exit status from its own wait, so it is left alone; otherwise,
// reaping it as its tracer hands it on to its real parent.
func (f *freezer) reapZombies() {
	keep := f.zombies[:0]
	for _, tid := range f.zombies {
		if tid == f.pid && isOurChild(tid) {
			continue
		}
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(tid, &ws, unix.WNOHANG|unix.WALL, nil)
		if errors.Is(err, unix.EINTR) || (err == nil && wpid == 0) {
			keep = append(keep, tid) // not a zombie yet (or the group is not empty)
		}
		// Reaped, or ECHILD: not ours any more.
	}
	f.zombies = keep
}

// isOurChild tells whether this process is pid's parent.
func isOurChild(pid int) bool {
	st, err := readTaskStatus(pid, 0)
	return err == nil && st.PPid == os.Getpid()
}

// pollPending collects, without waiting, the stops of seized threads.
func (f *freezer) pollPending() {
	for _, tid := range f.order {
		if t := f.threads[tid]; t != nil && !t.stopped {
			_, _ = f.poll(t)
		}
	}
	f.checkPendingStatus()
}

// compact drops forgotten threads from the seize order.
func (f *freezer) compact() {
	order := f.order[:0]
	for _, tid := range f.order {
		if f.threads[tid] != nil {
			order = append(order, tid)
		}
	}
	f.order = order
}

// adopt prepares a freezer that still holds seized threads (left by an
// earlier check) for a new check of the same process.
func (f *freezer) adopt(timeout time.Duration) {
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	f.timeout = timeout
	f.rounds, f.signals = 0, 0
	f.firstStop = time.Time{}
	f.unseizable = map[int]bool{}
	f.compact()
}

// holdsAny tells whether the freezer still has threads seized or to reap.
func (f *freezer) holdsAny() bool { return len(f.threads) > 0 || len(f.zombies) > 0 }

func (f *freezer) hasPending() bool {
	for _, t := range f.threads {
		if !t.stopped {
			return true
		}
	}
	return false
}

// ptraceDetach resumes a stopped tracee; sig, if not 0, is delivered to it.
func ptraceDetach(tid, sig int) error {
	_, _, errno := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(tid), 0, uintptr(sig), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
