package scanner

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"time"

	"golang.org/x/arch/x86/x86asm"
	"golang.org/x/sys/unix"

	"github.com/lsan-project/lsan/internal/x86"
)

// A fork snapshot (Options.Fork): the stopped target is made to fork a
// copy of itself, resumed at once, and the copy — memory as it was at one
// instant, copy-on-write — is scanned at leisure, then killed.
//
// How the copy is made, and why it never runs the program:
//   - One stopped thread executes clone(CLONE_PARENT|SIGCHLD) injected
//     through ptrace: its registers are saved, set for the call, the
//     instruction single-stepped, and restored exactly (a system call the
//     thread was blocked in restarts as it would have).
//   - The copy is the child of the target's parent (CLONE_PARENT): the
//     target gets no SIGCHLD and has no child to reap. The copy's death
//     goes to that parent, a shell or a service manager, which reaps it.
//   - The clone runs from a `syscall` instruction inside libc's _exit,
//     chosen so that the instructions after it, run by a child whose clone
//     returned 0, reach exit_group (exitGadget): if the copy is ever
//     resumed, it exits before a single instruction of the program.
//   - PTRACE_O_TRACEFORK makes the copy start stopped and traced by lsan;
//     PTRACE_O_EXITKILL, set on the copy alone, kills it if lsan dies.
//     No pthread_atfork handler runs: this is a raw system call.
//
// Where this cannot be done safely the check stops the target instead and
// says why (forkUnavailable): not x86-64; a seccomp filter (it may kill a
// process that calls clone); no recognisable _exit; the target is the
// init of its PID namespace (CLONE_PARENT fails there); a memory cgroup
// without room for the copy's private pages.

// exitGadget is where the clone is injected and the registers that make
// the child's path from there end in exit_group.
type exitGadget struct {
	addr uint64             // runtime address of the syscall instruction
	regs map[x86asm.Reg]int // free registers the child's path reads, and their values
}

// cloneRegs are clone's argument registers, not free for the gadget.
var cloneRegs = map[x86asm.Reg]bool{x86asm.RAX: true, x86asm.RDI: true, x86asm.RSI: true}

// Exit system calls on x86-64.
const (
	sysExit      = 60
	sysExitGroup = 231
)

// findExitGadget locates _exit in the target's libc (or in a static
// executable) and a syscall instruction in it that suits.
func findExitGadget(pid int, maps []mapping) (exitGadget, error) {
	for _, m := range exitCandidates(pid, maps) {
		if g, ok := gadgetIn(pid, m); ok {
			return g, nil
		}
	}
	return exitGadget{}, errors.New("no _exit of a known shape in the target's libc")
}

// exitCandidates are the first mappings of the modules that may define
// _exit: libc, musl's dynamic linker (its libc), the executable.
func exitCandidates(pid int, maps []mapping) []mapping {
	exe, _ := os.Readlink(fmt.Sprintf("%s/%d/exe", procRoot, pid))
	var out []mapping
	for _, m := range maps {
		base := filepath.Base(m.path)
		if m.offset != 0 || m.inode == 0 {
			continue
		}
		if strings.HasPrefix(base, "libc.so") || strings.HasPrefix(base, "libc-") ||
			strings.HasPrefix(base, "ld-musl") || m.path == exe {
			out = append(out, m)
		}
	}
	return out
}

// gadgetIn looks for the gadget in module m's _exit or _Exit.
func gadgetIn(pid int, m mapping) (exitGadget, bool) {
	ef, f, err := openModule(pid, m)
	if err != nil {
		return exitGadget{}, false
	}
	defer f.Close()
	bias, ok := loadBias(ef, m.start)
	if !ok {
		return exitGadget{}, false
	}
	for _, name := range []string{"_exit", "_Exit"} {
		sym, ok := anySymbol(ef, name)
		if !ok {
			continue
		}
		size := min(max(sym.Size, 32), 256)
		code, err := readVaddr(ef, sym.Value, int(size))
		if err != nil {
			continue
		}
		if off, regs, ok := findGadget(code); ok {
			return exitGadget{addr: bias + sym.Value + uint64(off), regs: regs}, true
		}
	}
	return exitGadget{}, false
}

// anySymbol finds a function in the dynamic symbols or in .symtab.
func anySymbol(ef *elf.File, name string) (elf.Symbol, bool) {
	if s, ok := dynamicSymbol(ef, name); ok && s.Value != 0 {
		return s, true
	}
	syms, _ := ef.Symbols()
	for _, s := range syms {
		if s.Name == name && s.Value != 0 && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			return s, true
		}
	}
	return elf.Symbol{}, false
}

// findGadget returns the offset of a syscall instruction in code from
// which a child whose clone returned 0 reaches exit or exit_group, and the
// values the free registers on its way must hold.
func findGadget(code []byte) (int, map[x86asm.Reg]int, bool) {
	for off := 0; off+2 <= len(code); off++ {
		if code[off] != 0x0f || code[off+1] != 0x05 {
			continue
		}
		if regs, ok := childExits(code, off+2); ok {
			return off, regs, true
		}
	}
	return 0, nil, false
}

// childExits follows the child from pc with rax = 0, through the few
// instruction kinds an _exit uses, to the next syscall: it must be exit or
// exit_group. A register it reads that clone leaves free is bound to the
// value the path needs. Anything else is refused.
func childExits(code []byte, pc int) (map[x86asm.Reg]int, bool) {
	known := map[x86asm.Reg]uint64{x86asm.RAX: 0}
	alias := map[x86asm.Reg]x86asm.Reg{} // a register copied from a free one
	var lhs, rhs uint64                  // the last comparison
	compared := false
	for steps := 0; steps < 32 && pc >= 0 && pc < len(code); steps++ {
		if pc+2 <= len(code) && code[pc] == 0x0f && code[pc+1] == 0x05 {
			return exitRegs(known, alias)
		}
		inst, err := x86asm.Decode(code[pc:], 64)
		if err != nil {
			return nil, false
		}
		next := pc + inst.Len
		switch inst.Op {
		case x86asm.NOP:
		case x86asm.MOV:
			dst, ok := inst.Args[0].(x86asm.Reg)
			if !ok {
				return nil, false
			}
			dst = x86.FullReg(dst)
			delete(known, dst)
			delete(alias, dst)
			switch src := inst.Args[1].(type) {
			case x86asm.Imm:
				known[dst] = uint64(src) & 0xffffffff
			case x86asm.Reg:
				src = x86.FullReg(src)
				if v, ok := known[src]; ok {
					known[dst] = v & 0xffffffff
				} else if a, ok := alias[src]; ok {
					alias[dst] = a
				} else if !cloneRegs[src] {
					alias[dst] = src
				} else {
					return nil, false
				}
			default:
				return nil, false
			}
		case x86asm.CMP:
			r, ok := inst.Args[0].(x86asm.Reg)
			imm, okImm := inst.Args[1].(x86asm.Imm)
			v, okVal := known[x86.FullReg(r)]
			if !ok || !okImm || !okVal {
				return nil, false
			}
			lhs, rhs, compared = v, uint64(int64(imm)), true
		case x86asm.JMP:
			rel, ok := inst.Args[0].(x86asm.Rel)
			if !ok {
				return nil, false
			}
			next += int(rel)
		case x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JE, x86asm.JNE:
			rel, ok := inst.Args[0].(x86asm.Rel)
			if !ok || !compared {
				return nil, false
			}
			if branchTaken(inst.Op, lhs, rhs) {
				next += int(rel)
			}
		default:
			return nil, false
		}
		pc = next
	}
	return nil, false
}

func branchTaken(op x86asm.Op, a, b uint64) bool {
	switch op {
	case x86asm.JA:
		return a > b
	case x86asm.JAE:
		return a >= b
	case x86asm.JB:
		return a < b
	case x86asm.JBE:
		return a <= b
	case x86asm.JE:
		return a == b
	}
	return a != b // JNE
}

// exitRegs checks the system call number at the child's syscall.
func exitRegs(known map[x86asm.Reg]uint64, alias map[x86asm.Reg]x86asm.Reg) (map[x86asm.Reg]int, bool) {
	if v, ok := known[x86asm.RAX]; ok {
		if v == sysExit || v == sysExitGroup {
			return map[x86asm.Reg]int{}, true
		}
		return nil, false
	}
	if free, ok := alias[x86asm.RAX]; ok {
		return map[x86asm.Reg]int{free: sysExitGroup}, true
	}
	return nil, false
}

// forkUnavailable says why a fork snapshot of pid cannot be taken safely
// ("" when it can).
func forkUnavailable(pid int) string {
	if runtime.GOARCH != "amd64" {
		return "fork snapshots are implemented for x86-64 only"
	}
	status, err := os.ReadFile(fmt.Sprintf("%s/%d/status", procRoot, pid))
	if err != nil {
		return err.Error()
	}
	if v := statusField(status, "Seccomp"); v != "" && v != "0" {
		return "the target runs under seccomp, which may kill it for a clone"
	}
	if v := statusField(status, "NSpid"); v != "" && strings.HasSuffix(v, "\t1") || v == "1" {
		return "the target is the init of its PID namespace"
	}
	if why := cgroupTooTight(pid, status); why != "" {
		return why
	}
	return ""
}

// statusField returns the value of a /proc/PID/status line.
func statusField(status []byte, key string) string {
	for _, line := range bytes.Split(status, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(key+":")); ok {
			return strings.TrimSpace(string(v))
		}
	}
	return ""
}

// cgroupTooTight refuses a fork when the target's memory cgroup has less
// room than the target's anonymous memory: in the worst case, the target
// rewrites every page while the copy exists, and each is copied.
func cgroupTooTight(pid int, status []byte) string {
	data, err := os.ReadFile(fmt.Sprintf("%s/%d/cgroup", procRoot, pid))
	if err != nil {
		return ""
	}
	path, ok := strings.CutPrefix(strings.TrimSpace(string(data)), "0::")
	if !ok {
		return "" // cgroup v1: no single memory.max to read
	}
	dir := filepath.Join("/sys/fs/cgroup", path)
	limit, errMax := os.ReadFile(filepath.Join(dir, "memory.max"))
	current, errCur := os.ReadFile(filepath.Join(dir, "memory.current"))
	if errMax != nil || errCur != nil || strings.TrimSpace(string(limit)) == "max" {
		return ""
	}
	max, err1 := strconv.ParseUint(strings.TrimSpace(string(limit)), 10, 64)
	cur, err2 := strconv.ParseUint(strings.TrimSpace(string(current)), 10, 64)
	anonKB, err3 := strconv.ParseUint(strings.TrimSuffix(statusField(status, "RssAnon"), " kB"), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return ""
	}
	if cur >= max || max-cur < anonKB<<10 {
		return fmt.Sprintf("its memory cgroup has %d MiB free, less than its %d MiB of anonymous memory a copy may need",
			(max-min(cur, max))>>20, anonKB>>10)
	}
	return ""
}

// forkAndResume takes a fork snapshot: it returns the copy's pid and the
// instant of the fork, the target resumed. The pid is 0 when the check
// must keep the target stopped instead; st.ForkFallback says why. The
// error is for a target that could not be resumed.
func (f *freezer) forkAndResume(threads []*frozenThread, st *Stats) (int, uint64, error) {
	if why := forkUnavailable(f.pid); why != "" {
		st.ForkFallback = why
		return 0, 0, nil
	}
	maps, err := readMaps(f.pid)
	if err != nil {
		st.ForkFallback = err.Error()
		return 0, 0, nil
	}
	t := injector(f.pid, threads)
	g, err := cachedGadget(f.pid, maps)
	if t == nil || err != nil {
		st.ForkFallback = fmt.Sprint("no thread to fork from: ", err)
		if err != nil {
			st.ForkFallback = err.Error()
		}
		return 0, 0, nil
	}
	child, err := f.forkCopy(t, g)
	if err != nil {
		st.ForkFallback = "fork failed: " + err.Error()
		return 0, 0, nil
	}
	at := monotonicNow()
	f.maps = maps
	f.gadget = g
	if err := f.thaw(thawWait); err != nil {
		f.reapCopy(child, g)
		return 0, 0, err
	}
	st.Paused = time.Since(f.firstStop)
	st.Forked = true
	return child, at, nil
}

// injector picks the thread that forks: the main thread if it is
// stopped with its registers read, else any such thread.
func injector(pid int, threads []*frozenThread) *frozenThread {
	var any *frozenThread
	for _, t := range threads {
		if !t.stopped {
			continue
		}
		if t.tid == pid {
			return t
		}
		if any == nil {
			any = t
		}
	}
	return any
}

// gadgets caches each process's gadget by the address of the module it
// is in (an execve maps another). Only the tracer thread uses it.
var gadgets = map[int]exitGadget{}

func cachedGadget(pid int, maps []mapping) (exitGadget, error) {
	if g, ok := gadgets[pid]; ok && mappedExecutable(maps, g.addr) {
		return g, nil
	}
	g, err := findExitGadget(pid, maps)
	if err != nil {
		return g, err
	}
	gadgets[pid] = g
	return g, nil
}

func mappedExecutable(maps []mapping, addr uint64) bool {
	for _, m := range maps {
		if addr >= m.start && addr < m.end {
			return len(m.perms) > 2 && m.perms[2] == 'x'
		}
	}
	return false
}

// bytesNotInCopy counts the writable memory of the target that the copy
// did not get (MADV_DONTFORK): it cannot be scanned, and the check says
// its data is incomplete.
func bytesNotInCopy(target, copied []mapping) uint64 {
	var have []span
	for _, m := range copied {
		have = append(have, span{m.start, m.end})
	}
	have = normalize(have)
	var missing uint64
	for _, m := range target {
		if !m.readable() || !m.writable() {
			continue
		}
		for _, s := range subtract([]span{{m.start, m.end}}, spansOf(have), false) {
			missing += s.size()
		}
	}
	return missing
}

// monotonicNow is CLOCK_MONOTONIC in nanoseconds, the tracer's clock.
func monotonicNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}
