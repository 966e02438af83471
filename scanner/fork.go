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

	"golang.org/x/sys/unix"
)

// A fork snapshot (Options.Fork): the stopped target is made to fork a
// copy of itself, resumed at once, and the copy — memory as it was at one
// instant, copy-on-write — is scanned at leisure, then killed.
//
// How the copy is made:
//   - System calls are injected through ptrace into a stopped thread: its
//     registers are saved, set for the call, the `syscall` instruction of
//     a small stub is single-stepped, and the registers restored exactly
//     (a system call the thread was blocked in restarts as it would have).
//   - The stub (fork_amd64.go) is written once into spare bytes at the end
//     of libc's code mapping, past its last function: no code runs there.
//     After its syscall it holds what makes lsan's own death harmless: if
//     lsan is killed between setting and restoring the registers, the
//     thread runs on into the stub, which restores its registers from a
//     save area and returns to where it was; a new process (rax 0) goes to
//     exit_group instead, never into the program.
//   - The target clones an intermediate process with no exit signal (no
//     SIGCHLD; invisible to wait(), waitpid(-1) and waitid(P_ALL) without
//     __WALL), which forks the copy and is killed at once; the target is
//     made to reap it. The copy, orphaned, belongs to init (or to the
//     nearest child subreaper), which reaps it when lsan kills it or when
//     lsan dies (PTRACE_O_EXITKILL, inherited by the copy at its birth).
//     No pthread_atfork handler runs: these are raw system calls.
//
// Where this cannot be done safely the check stops the target instead and
// says why (forkUnavailable, findStubSite): not x86-64; a seccomp filter
// (it may kill a process that calls clone); the init of a PID namespace;
// no spare bytes after libc's code; a memory cgroup without room for the
// copy's private pages.

// stubSite is where the injection stub lies in the target.
type stubSite struct {
	addr uint64 // runtime address, 16-aligned
}

// findStubSite finds spare bytes after the code of libc (or of a static
// executable): the end of the executable segment up to the end of its
// last page, mapped but holding no function. They must read as zeros, or
// as the stub itself (an earlier check wrote it).
func findStubSite(pid int, maps []mapping, stub []byte) (stubSite, error) {
	for _, m := range stubCandidates(pid, maps) {
		if site, ok := spareAfterCode(pid, m, maps, stub); ok {
			return site, nil
		}
	}
	return stubSite{}, errors.New("no spare bytes after the code of the target's libc")
}

// stubCandidates are the first mappings of libc (glibc's, or musl's
// dynamic linker, which is its libc) and of the executable.
func stubCandidates(pid int, maps []mapping) []mapping {
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

// spareAfterCode checks module m's executable segment for room after it.
func spareAfterCode(pid int, m mapping, maps []mapping, stub []byte) (stubSite, bool) {
	ef, f, err := openModule(pid, m)
	if err != nil {
		return stubSite{}, false
	}
	defer f.Close()
	bias, ok := loadBias(ef, m.start)
	if !ok {
		return stubSite{}, false
	}
	for _, p := range ef.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_X == 0 {
			continue
		}
		addr := (bias + p.Vaddr + p.Memsz + 15) &^ 15
		for _, mm := range maps {
			if addr < mm.start || addr >= mm.end || !strings.HasPrefix(mm.perms, "r-x") {
				continue
			}
			if addr+uint64(len(stub)) > mm.end {
				return stubSite{}, false
			}
			if spareOrOurs(pid, addr, stub) {
				return stubSite{addr: addr}, true
			}
		}
	}
	return stubSite{}, false
}

// spareOrOurs tells whether the bytes at addr are all zero, or our stub's
// code (its save area after it may hold anything).
func spareOrOurs(pid int, addr uint64, stub []byte) bool {
	mem, err := os.Open(fmt.Sprintf("%s/%d/mem", procRoot, pid))
	if err != nil {
		return false
	}
	defer mem.Close()
	got := make([]byte, len(stub))
	if _, err := mem.ReadAt(got, int64(addr)); err != nil {
		return false
	}
	code := stub[:stubCodeSize]
	return bytes.Equal(got[:stubCodeSize], code) || bytes.Count(got, []byte{0}) == len(got)
}

// writeMem writes b at addr in pid's memory, read-only code pages
// included (the kernel makes a private copy of the page for pid).
func writeMem(pid int, addr uint64, b []byte) error {
	mem, err := os.OpenFile(fmt.Sprintf("%s/%d/mem", procRoot, pid), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer mem.Close()
	_, err = mem.WriteAt(b, int64(addr))
	return err
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
	room, ok := cgroupRoom(pid)
	anonKB, err := kbField(status, "RssAnon")
	if !ok || err != nil {
		return ""
	}
	if room < anonKB<<10 {
		return fmt.Sprintf("its memory cgroup has %d MiB free, less than its %d MiB of anonymous memory a copy may need",
			room>>20, anonKB>>10)
	}
	return ""
}

// forkPlan is what a fork snapshot needs that can be found before the
// target is stopped, so that its pause is only the fork.
type forkPlan struct {
	site stubSite
	// why the check must stop the target instead ("" when it can fork).
	why string
}

// planFork checks that a fork snapshot of pid can be taken safely and
// finds the stub site.
func planFork(pid int) forkPlan {
	if why := forkUnavailable(pid); why != "" {
		return forkPlan{why: why}
	}
	maps, err := readMaps(pid)
	if err != nil {
		return forkPlan{why: err.Error()}
	}
	site, err := cachedStubSite(pid, maps)
	if err != nil {
		return forkPlan{why: err.Error()}
	}
	return forkPlan{site: site}
}

// forkAndResume takes a fork snapshot: it returns the copy's pid and the
// instant of the fork, the target resumed. The pid is 0 when the check
// must keep the target stopped instead; st.ForkFallback says why. The
// error is for a target that could not be resumed.
func (f *freezer) forkAndResume(plan forkPlan, threads []*frozenThread, st *Stats) (int, uint64, error) {
	if plan.why != "" {
		st.ForkFallback = plan.why
		return 0, 0, nil
	}
	t := injector(f.pid, threads)
	if t == nil {
		st.ForkFallback = "no stopped thread to fork from"
		return 0, 0, nil
	}
	child, err := f.forkCopy(t, plan.site)
	if err != nil {
		st.ForkFallback = "fork failed: " + err.Error()
		return 0, 0, nil
	}
	at := monotonicNow()
	if err := f.thaw(thawWait); err != nil {
		killCopy(child)
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

// stubSites caches each process's stub site; an execve maps other code
// (mappedExecutable checks). Only the tracer thread uses it.
var stubSites = map[int]stubSite{}

func cachedStubSite(pid int, maps []mapping) (stubSite, error) {
	if s, ok := stubSites[pid]; ok && mappedExecutable(maps, s.addr) {
		return s, nil
	}
	s, err := findStubSite(pid, maps, stubImage())
	if err != nil {
		return s, err
	}
	stubSites[pid] = s
	return s, nil
}

func mappedExecutable(maps []mapping, addr uint64) bool {
	for _, m := range maps {
		if addr >= m.start && addr < m.end {
			return len(m.perms) > 2 && m.perms[2] == 'x'
		}
	}
	return false
}

// bytesNotInCopy counts the memory of pid that a fork does not copy and a
// scan would read: its writable mappings flagged dc (MADV_DONTFORK: absent
// from the copy) and wf (MADV_WIPEONFORK: zeros in the copy). The kernel's
// own [uprobes] page is dc, and holds no data. It cannot be scanned, and the
// check says its data is incomplete. Read after the target resumed, from
// /proc/PID/smaps: such flags are set once, at setup, by the programs
// that use them.
func bytesNotInCopy(pid int) uint64 {
	data, err := os.ReadFile(fmt.Sprintf("%s/%d/smaps", procRoot, pid))
	if err != nil {
		return 0
	}
	return notCopiedBytes(data)
}

// notCopiedBytes parses /proc/PID/smaps for bytesNotInCopy.
func notCopiedBytes(data []byte) uint64 {
	var missing, size uint64
	writable := false
	for _, line := range bytes.Split(data, []byte("\n")) {
		fields := bytes.Fields(line)
		switch {
		case len(fields) >= 5 && bytes.IndexByte(fields[0], '-') > 0 && len(fields[1]) == 4:
			// A mapping's header line: range, perms, offset, dev, inode.
			writable = fields[1][0] == 'r' && fields[1][1] == 'w'
		case bytes.HasPrefix(line, []byte("Size:")):
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(string(line[5:])), " kB"), 10, 64)
			size = kb << 10
		case bytes.HasPrefix(line, []byte("VmFlags:")):
			for _, flag := range strings.Fields(string(line[8:])) {
				if writable && (flag == "dc" || flag == "wf") {
					missing += size
					break
				}
			}
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
