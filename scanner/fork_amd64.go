package scanner

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The injection stub, position-independent, followed by its save area:
//
//	plain: syscall                  ; any call (wait4)
//	       jmp restore
//	clone: syscall                  ; clone
//	       test rax, rax
//	       jz child                 ; the new process: never the program
//	restore:                        ; lsan died before restoring the thread:
//	       mov rcx..r9, [save]      ;   the registers it had,
//	       mov rsp, [save.rsp]
//	       lea rsp, [rsp-128]       ;   below the red zone,
//	       push [save.rip]          ;   where it resumes,
//	       push [save.rflags]
//	       mov rax, [save.rax]
//	       popfq
//	       ret 128                  ;   and back, rsp as it was
//	child: mov eax, 231             ; exit_group(0)
//	       xor edi, edi
//	       syscall
//	       ud2
//
// lsan itself only ever runs one of the two syscall instructions (resumed
// with PTRACE_SYSCALL, it stops at the call's entry and exit) and then sets
// the registers back; the rest runs only if lsan is killed in between. Not
// PTRACE_SINGLESTEP: the kernel leaves the trap flag set when a tracer
// dies, and the next instruction would kill the thread with SIGTRAP.
const (
	stubPlain = 0 // offset of the plain entry
	stubClone = 4 // offset of the clone entry
)

// Save area slots (8 bytes each), after the code.
const (
	saveRIP = iota
	saveRAX
	saveRSP
	saveRFLAGS
	saveRCX
	saveR11
	saveRDI
	saveRSI
	saveRDX
	saveR10
	saveR8
	saveR9
	saveSlots
)

var (
	stubCode     = assembleStub()
	stubCodeSize = len(stubCode)
	// stubDataOffset: the save area, 8-aligned after the code.
	stubDataOffset = (stubCodeSize + 7) &^ 7
)

// assembleStub encodes the stub. RIP-relative operands address the save
// area that follows the code.
func assembleStub() []byte {
	var code []byte
	type fixup struct{ at, slot int }
	var fixups []fixup
	emit := func(b ...byte) { code = append(code, b...) }
	// ripLoad emits an instruction whose last 4 bytes are a disp32 to
	// save slot slot.
	ripLoad := func(slot int, b ...byte) {
		emit(b...)
		fixups = append(fixups, fixup{len(code), slot})
		emit(0, 0, 0, 0)
	}
	emit(0x0f, 0x05)       // plain: syscall
	emit(0xeb, 0)          // jmp restore (patched below)
	jmpAt := len(code) - 1 //
	emit(0x0f, 0x05)       // clone: syscall
	emit(0x48, 0x85, 0xc0) // test rax, rax
	emit(0x74, 0)          // jz child (patched below)
	jzAt := len(code) - 1
	restore := len(code)
	ripLoad(saveRCX, 0x48, 0x8b, 0x0d) // mov rcx, [rip+d]
	ripLoad(saveR11, 0x4c, 0x8b, 0x1d) // mov r11, [rip+d]
	ripLoad(saveRDI, 0x48, 0x8b, 0x3d) // mov rdi, [rip+d]
	ripLoad(saveRSI, 0x48, 0x8b, 0x35) // mov rsi, [rip+d]
	ripLoad(saveRDX, 0x48, 0x8b, 0x15) // mov rdx, [rip+d]
	ripLoad(saveR10, 0x4c, 0x8b, 0x15) // mov r10, [rip+d]
	ripLoad(saveR8, 0x4c, 0x8b, 0x05)  // mov r8, [rip+d]
	ripLoad(saveR9, 0x4c, 0x8b, 0x0d)  // mov r9, [rip+d]
	ripLoad(saveRSP, 0x48, 0x8b, 0x25) // mov rsp, [rip+d]
	emit(0x48, 0x8d, 0x64, 0x24, 0x80) // lea rsp, [rsp-128]
	ripLoad(saveRIP, 0xff, 0x35)       // push qword [rip+d]
	ripLoad(saveRFLAGS, 0xff, 0x35)    // push qword [rip+d]
	ripLoad(saveRAX, 0x48, 0x8b, 0x05) // mov rax, [rip+d]
	emit(0x9d)                         // popfq
	emit(0xc2, 0x80, 0x00)             // ret 128
	child := len(code)
	emit(0xb8, 0xe7, 0, 0, 0) // mov eax, 231 (exit_group)
	emit(0x31, 0xff)          // xor edi, edi
	emit(0x0f, 0x05)          // syscall
	emit(0x0f, 0x0b)          // ud2
	code[jmpAt] = byte(restore - (jmpAt + 1))
	code[jzAt] = byte(child - (jzAt + 1))
	data := (len(code) + 7) &^ 7
	for _, f := range fixups {
		// The displacement counts from the end of the instruction, which
		// is the end of the disp32 itself.
		disp := int32(data + 8*f.slot - (f.at + 4))
		binary.LittleEndian.PutUint32(code[f.at:], uint32(disp))
	}
	return code
}

// stubImage is the stub's code and an empty save area.
func stubImage() []byte {
	img := make([]byte, stubDataOffset+8*saveSlots)
	copy(img, stubCode)
	return img
}

// saveArea is where thread regs resumes if lsan dies during an injection.
func saveArea(regs unix.PtraceRegs) []byte {
	rip, rax := resumePoint(regs)
	words := [saveSlots]uint64{
		saveRIP: rip, saveRAX: rax, saveRSP: regs.Rsp, saveRFLAGS: regs.Eflags,
		saveRCX: regs.Rcx, saveR11: regs.R11, saveRDI: regs.Rdi, saveRSI: regs.Rsi,
		saveRDX: regs.Rdx, saveR10: regs.R10, saveR8: regs.R8, saveR9: regs.R9,
	}
	out := make([]byte, 8*saveSlots)
	for i, w := range words {
		binary.LittleEndian.PutUint64(out[8*i:], w)
	}
	return out
}

// Kernel-internal restart codes a stopped thread's rax can hold when it
// was interrupted in a system call.
const (
	errRestartSys          = -512
	errRestartNoIntr       = -513
	errRestartNoHand       = -514
	errRestartRestartBlock = -516
)

// resumePoint is where a thread resumes and with which rax: a system call
// it was interrupted in is re-executed, as the kernel would on its way
// out of the stop.
func resumePoint(r unix.PtraceRegs) (rip, rax uint64) {
	if int64(r.Orig_rax) >= 0 {
		switch int64(r.Rax) {
		case errRestartSys, errRestartNoIntr, errRestartNoHand:
			return r.Rip - 2, r.Orig_rax
		case errRestartRestartBlock:
			return r.Rip - 2, unix.SYS_RESTART_SYSCALL
		}
	}
	return r.Rip, r.Rax
}

// The copy is made in two steps, so that it is nobody's child but init's:
// the target clones an intermediate with no exit signal, which forks the
// copy and is killed at once; the target is made to reap it; the copy,
// orphaned, belongs to init (which the kernel gives SIGCHLD as the
// copy's exit signal when it reparents it). The intermediate shares the
// target's memory (CLONE_VM): only the copy's page tables are copied, and
// killing the intermediate frees none.
//
// The copy has no exit signal either: the intermediate runs the target's
// signal handlers on the target's memory, so a SIGCHLD from a copy that
// dies while the intermediate lives (lsan killed between the two clones:
// the copy dies with lsan) would run the target's SIGCHLD handler — the
// target would count, and might reap, a child it never made.
const (
	intermediateFlags = unix.CLONE_VM
	copyFlags         = uint64(0)
)

// injected is the outcome of a system call run in a stopped thread.
type injected struct {
	ret   uint64 // rax after the call
	event uint   // PTRACE_GETEVENTMSG of the ptrace event it raised, if any
}

// syscallIn runs system call nr with args in stopped thread t of process
// pid, from the stub entry at site+entry, through its entry and exit
// stops, with the ptrace event options ask for (a clone) between them. t's registers and
// options are restored on every path; a signal that arrives for t
// meanwhile is kept for its detach.
func syscallIn(pid int, t *frozenThread, site stubSite, entry int, nr uint64, args [5]uint64, options int) (out injected, err error) {
	var saved unix.PtraceRegs
	if err := unix.PtraceGetRegs(t.tid, &saved); err != nil {
		return out, fmt.Errorf("read registers of thread %d: %w", t.tid, err)
	}
	if err := writeMem(pid, site.addr+uint64(stubDataOffset), saveArea(saved)); err != nil {
		return out, fmt.Errorf("write the save area: %w", err)
	}
	regs := saved
	regs.Rip = site.addr + uint64(entry)
	regs.Rax = nr
	regs.Orig_rax = ^uint64(0) // no system call to restart on the way out of this stop
	regs.Rdi, regs.Rsi, regs.Rdx, regs.R10, regs.R8 = args[0], args[1], args[2], args[3], args[4]
	defer func() {
		// Whatever happened, the thread goes on as if nothing had.
		optErr := unix.PtraceSetOptions(t.tid, 0)
		regErr := unix.PtraceSetRegs(t.tid, &saved)
		if err == nil {
			err = errors.Join(optErr, regErr)
		}
	}()
	if err := unix.PtraceSetOptions(t.tid, options|unix.PTRACE_O_TRACESYSGOOD); err != nil {
		return out, fmt.Errorf("set ptrace options of thread %d: %w", t.tid, err)
	}
	if err := unix.PtraceSetRegs(t.tid, &regs); err != nil {
		return out, fmt.Errorf("set registers of thread %d: %w", t.tid, err)
	}
	const syscallStop = unix.SIGTRAP | 0x80 // with PTRACE_O_TRACESYSGOOD
	entered := false
	for stops := 0; stops < 8; stops++ {
		if err := unix.PtraceSyscall(t.tid, 0); err != nil {
			return out, fmt.Errorf("resume thread %d: %w", t.tid, err)
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(t.tid, &ws, unix.WALL, nil); err != nil {
			return out, fmt.Errorf("wait for thread %d: %w", t.tid, err)
		}
		switch {
		case ws.Exited() || ws.Signaled():
			return out, fmt.Errorf("thread %d ended in an injected system call: %w", t.tid, ErrTargetExited)
		case !ws.Stopped():
		case ws.StopSignal() == syscallStop && !entered:
			entered = true
		case ws.StopSignal() == syscallStop:
			// The call's exit: its result is in rax.
			var after unix.PtraceRegs
			if err := unix.PtraceGetRegs(t.tid, &after); err != nil {
				return out, fmt.Errorf("read registers of thread %d: %w", t.tid, err)
			}
			out.ret = after.Rax
			return out, nil
		case ws.StopSignal() == unix.SIGTRAP && ws.TrapCause() > 0:
			if out.event, err = unix.PtraceGetEventMsg(t.tid); err != nil {
				return out, fmt.Errorf("read the event of thread %d: %w", t.tid, err)
			}
		default:
			// A signal for the thread meanwhile: delivered at detach.
			if t.signal == 0 {
				t.signal = int(ws.StopSignal())
			}
		}
	}
	return out, errors.New("the injected system call did not complete")
}

// forkCopy makes stopped thread t of the target fork the copy (through
// the intermediate) and returns the copy's pid: stopped, traced, set to die
// with lsan, child of init.
func (f *freezer) forkCopy(t *frozenThread, site stubSite) (int, error) {
	if err := writeMem(f.pid, site.addr, stubImage()); err != nil {
		return 0, fmt.Errorf("write the injection stub: %w", err)
	}
	mid, err := cloneFrom(f.pid, t, site, intermediateFlags, unix.PTRACE_O_TRACECLONE)
	if err != nil {
		return 0, fmt.Errorf("clone the intermediate: %w", err)
	}
	defer reapThrough(f.pid, t, site, mid)
	// Its options pass to the copy at its birth: it dies with lsan. A
	// child without SIGCHLD as its exit signal is reported as a clone.
	opts := unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_EXITKILL
	child, err := cloneFrom(mid, &frozenThread{tid: mid, stopped: true}, site, copyFlags, opts)
	if err != nil {
		return 0, fmt.Errorf("fork the copy: %w", err)
	}
	return child, nil
}

// cloneFrom makes stopped thread t of process pid clone a process with
// the given flags (options: the ptrace event that reports it) and returns
// it stopped, traced and set to die with lsan.
func cloneFrom(pid int, t *frozenThread, site stubSite, flags uint64, options int) (int, error) {
	out, err := syscallIn(pid, t, site, stubClone, unix.SYS_CLONE, [5]uint64{flags}, options)
	child := int(out.event)
	if err == nil && int64(out.ret) < 0 {
		err = fmt.Errorf("clone failed: %w", unix.Errno(-int64(out.ret)))
	}
	if err == nil && child <= 0 {
		err = errors.New("clone made no process")
	}
	if err == nil {
		err = waitCopyStop(child)
	}
	if err == nil {
		err = unix.PtraceSetOptions(child, unix.PTRACE_O_EXITKILL)
	}
	if err != nil && child > 0 {
		killCopy(child)
	}
	return child, err
}

// reapLeftIntermediates ends and reaps, through one of the stopped
// threads, the intermediates an lsan killed at the wrong moment left
// behind: children of the target with its name and no exit signal,
// zombies, or stopped by the SIGSTOP they were born with. The target
// cannot see them with a plain wait (a program that makes such children
// itself, with raw clone(), has them running, not stopped or dead, unless
// it waits with __WCLONE). Every check does this, whatever its snapshot:
// the check after a killed lsan may well be one that stops the target.
func (f *freezer) reapLeftIntermediates(threads []*frozenThread) {
	left := silentChildren(f.pid)
	if len(left) == 0 {
		return
	}
	t := injector(f.pid, threads)
	maps, err := readMaps(f.pid)
	if t == nil || err != nil {
		return
	}
	site, err := cachedStubSite(f.pid, maps)
	if err != nil || writeMem(f.pid, site.addr, stubImage()) != nil {
		return
	}
	for _, c := range left {
		if c.state != "Z" {
			_ = unix.Kill(c.pid, unix.SIGKILL)
			for i := 0; i < 100 && childState(c.pid) != "Z"; i++ {
				time.Sleep(time.Millisecond)
			}
		}
		args := [5]uint64{uint64(c.pid), 0, unix.WALL | unix.WNOHANG}
		_, _ = syscallIn(f.pid, t, site, stubPlain, unix.SYS_WAIT4, args, 0)
	}
}

type silentChild struct {
	pid   int
	state string
}

// childState is a process's state letter, "" when it is gone.
func childState(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", procRoot, pid))
	if err != nil {
		return ""
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) == 0 {
		return ""
	}
	return fields[0]
}

// silentChildren lists pid's children with its command name and exit
// signal 0 that are zombies or stopped.
func silentChildren(pid int) []silentChild {
	data, err := os.ReadFile(fmt.Sprintf("%s/%d/task/%d/children", procRoot, pid, pid))
	if err != nil {
		return nil
	}
	name, _ := os.ReadFile(fmt.Sprintf("%s/%d/comm", procRoot, pid))
	var out []silentChild
	for _, f := range strings.Fields(string(data)) {
		child, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("%s/%d/stat", procRoot, child))
		comm, _ := os.ReadFile(fmt.Sprintf("%s/%d/comm", procRoot, child))
		if err != nil || string(comm) != string(name) {
			continue
		}
		// Fields after the command: state is the 3rd field, exit_signal the 38th.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 35 && strings.ContainsAny(fields[0], "ZTt") && fields[35] == "0" {
			out = append(out, silentChild{child, fields[0]})
		}
	}
	return out
}

// reapThrough kills child, a child of pid with no exit signal, and makes
// stopped thread t of pid reap it (wait4 with __WALL).
func reapThrough(pid int, t *frozenThread, site stubSite, child int) {
	killCopy(child)
	args := [5]uint64{uint64(child), 0, unix.WALL | unix.WNOHANG}
	_, _ = syscallIn(pid, t, site, stubPlain, unix.SYS_WAIT4, args, 0)
}

// waitCopyStop waits for a new process's first stop (ptrace starts an
// auto-attached child with SIGSTOP).
func waitCopyStop(child int) error {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(child, &ws, unix.WALL|unix.WNOHANG, nil)
		if err != nil {
			return fmt.Errorf("wait for process %d: %w", child, err)
		}
		if wpid == child && ws.Stopped() {
			return nil
		}
		if wpid == child && (ws.Exited() || ws.Signaled()) {
			return fmt.Errorf("process %d died at birth", child)
		}
		time.Sleep(100 * time.Microsecond)
	}
	return fmt.Errorf("process %d did not stop", child)
}

// killCopy ends a process lsan made and collects its death as its tracer;
// its parent (init, for the copy) reaps it.
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
