package scanner

import (
	"sort"
	"strings"
)

// redZone is the area below the stack pointer that the x86-64 ABI lets
// leaf functions use without moving the stack pointer.
const redZone = 128

// threadRoot is what a stopped thread tells the root planner.
type threadRoot struct {
	tid     int
	sp      uint64
	tp      uint64 // thread pointer (x86-64: fs base), 0 when unknown
	hasRegs bool
}

// rootPlan is the memory a check scans as roots.
type rootPlan struct {
	ranges      []span // sorted, disjoint
	mappings    int    // mappings that contributed
	unpopulated uint64 // bytes left out because their pages were never touched
	freedBytes  uint64 // freed memory left out (RootsAttach)
}

// rootFacts is what the planner knows besides the mappings and threads,
// found by reading the target (see findRootFacts).
type rootFacts struct {
	// exited holds the indices of mappings that are cached stacks of
	// exited threads: never roots (LSan scans live threads only).
	exited map[int]bool
	// modules are the writable segments of the loaded modules (their
	// data and bss): the globals.
	modules []span
	// tls are the live threads' static TLS blocks and thread descriptors
	// (normalized), known with RootsLSan, NoGlobals or NoTLS.
	tls []span
	// freed is memory the target freed (RootsAttach), normalized.
	freed []span
}

// planRoots computes the root ranges. With RootsAttach:
//
//   - every readable, writable mapping (globals, [heap], anonymous memory:
//     TLS, thread stacks, blocks allocated before attach), except special
//     and device mappings, shared file mappings and the cached stacks of
//     exited threads;
//   - minus the dead part of each thread's stack: a mapping recognized as a
//     thread stack is scanned only from the lowest stack pointer in it
//     upward (LSan scans [SP, stack end));
//   - minus freed memory, except in live threads' stacks and TLS;
//   - minus the bytes of tracked blocks, which are scanned only when
//     reached;
//   - plus, for a thread whose stack pointer lies inside a tracked block
//     (a heap-allocated coroutine stack), that block from SP to its end.
//
// With RootsLSan the general memory is left out: only the live parts of
// live threads' stacks, the modules' writable segments and static TLS are
// roots, as in LSan.
//
// Large ranges in private mappings keep only their populated pages (pm may
// be nil: everything is read). Shared memory is read whole: its pages may
// be present in another process only.
func planRoots(maps []mapping, threads []threadRoot, ix *blockIndex, opts Options, facts rootFacts, pm pageMap) rootPlan {
	st := liveStacks(maps, threads, ix, opts)
	var general, stacks []span
	plan := rootPlan{}
	for i, m := range maps {
		if !scannable(m) || facts.exited[i] {
			continue
		}
		lim, isStack := st.deadLimit[i]
		if !isStack && st.holdsThread[i] && isThreadStack(maps, i) {
			// A live thread's stack whose SP is elsewhere (a signal
			// handler on an alternate stack): scanned whole, as LSan does.
			lim, isStack = m.start, true
		}
		if isStack && opts.NoStacks {
			continue
		}
		if !isStack && opts.Roots == RootsLSan {
			if !st.unknownSP || !isThreadStack(maps, i) || opts.NoStacks {
				continue
			}
			// A thread without registers: its stack is not known, so
			// every stack-shaped mapping is kept.
			lim, isStack = m.start, true
		}
		start := max(m.start, lim)
		if start >= m.end {
			continue
		}
		plan.mappings++
		r := []span{{start, m.end}}
		if !m.shared() {
			r = keepPopulated(pm, r, &plan.unpopulated)
		}
		if isStack || st.holdsThread[i] {
			stacks = append(stacks, r...)
		} else {
			general = append(general, r...)
		}
	}
	general = normalize(general)
	if opts.NoGlobals {
		general = subtract(general, spansOf(facts.modules), false)
	}
	if len(facts.freed) > 0 {
		before := totalSize(general)
		general = subtract(general, spansOf(facts.freed), false)
		plan.freedBytes = before - totalSize(general)
	}
	ranges := append(general, stacks...)
	if !opts.NoStacks {
		ranges = append(ranges, st.onStack...)
	}
	if opts.Roots == RootsLSan {
		if !opts.NoStacks {
			ranges = append(ranges, st.inOther...)
		}
		if !opts.NoGlobals {
			ranges = append(ranges, facts.modules...)
		}
	}
	// Static TLS is a root of its own, inside a thread's stack mapping or
	// not: left out with NoTLS, kept with NoStacks.
	ranges = subtract(normalize(ranges), spansOf(facts.tls), false)
	if !opts.NoTLS {
		ranges = append(ranges, facts.tls...)
	}
	ranges = normalize(ranges)
	// Subtracting the blocks leaves, between two neighbouring glibc
	// chunks, the next chunk's size field: allocator bookkeeping, never an
	// object (any allocation needs two words with its header). Kept, a
	// heap of tracked blocks would be read whole for those words.
	ranges = subtract(ranges, ix.scannedRanges, true)
	if !opts.NoStacks {
		ranges = append(ranges, st.inBlock...)
	}
	ranges = normalize(ranges)
	if !opts.ScanUnaligned {
		ranges = alignInward(ranges, 8)
	}
	plan.ranges = ranges
	return plan
}

// stackFacts is where the live threads run.
type stackFacts struct {
	// deadLimit[i]: mapping i is a thread stack, scanned from here.
	deadLimit map[int]uint64
	// holdsThread[i]: a live thread's stack pointer or thread pointer is
	// in mapping i.
	holdsThread map[int]bool
	// inBlock: live stack parts inside tracked blocks; onStack: live
	// stack parts in mappings that are not roots by themselves; inOther:
	// live stack parts in root mappings not shaped as a thread stack (a
	// coroutine stack in anonymous memory), which RootsLSan scans alone.
	inBlock, onStack, inOther []span
	// unknownSP: some thread's registers could not be read.
	unknownSP bool
}

func liveStacks(maps []mapping, threads []threadRoot, ix *blockIndex, opts Options) stackFacts {
	st := stackFacts{deadLimit: map[int]uint64{}, holdsThread: map[int]bool{}}
	for _, t := range threads {
		if !t.hasRegs {
			// Without a stack pointer the whole stack mapping is scanned
			// (as LSan does when registers cannot be read).
			st.unknownSP = true
			continue
		}
		if ti := mappingAt(maps, t.tp); t.tp != 0 && ti >= 0 {
			st.holdsThread[ti] = true
		}
		low := t.sp
		if opts.ScanRedZone && low >= redZone {
			low -= redZone
		}
		mi := mappingAt(maps, t.sp)
		if mi < 0 || !maps[mi].readable() {
			continue // SP outside any mapping: no stack to scan
		}
		st.holdsThread[mi] = true
		m := maps[mi]
		low = max(low, m.start)
		if k := ix.findScan(t.sp); k >= 0 {
			st.inBlock = append(st.inBlock, span{max(low, ix.starts[k]), ix.scanEnd[k]})
			continue
		}
		if !scannable(m) {
			// Not root memory by itself (say, a shared file mapping), but
			// the thread runs on it: its live part is a root.
			if !isSpecial(m) {
				st.onStack = append(st.onStack, span{low, m.end})
			}
			continue
		}
		if !isThreadStack(maps, mi) {
			st.inOther = append(st.inOther, span{low, m.end})
			continue
		}
		if cur, ok := st.deadLimit[mi]; !ok || low < cur {
			st.deadLimit[mi] = low
		}
	}
	return st
}

// mappingAt returns the index of the mapping containing addr, or -1.
func mappingAt(maps []mapping, addr uint64) int {
	i := sort.Search(len(maps), func(i int) bool { return maps[i].end > addr })
	if i < len(maps) && maps[i].start <= addr {
		return i
	}
	return -1
}

// isThreadStack tells whether mapping i holds a thread stack whose part
// below the stack pointer is dead: the main thread's [stack], or an
// anonymous writable mapping right above a PROT_NONE guard (how glibc and
// musl allocate thread stacks). Any other mapping a stack pointer points
// into (a sigaltstack in .bss, a stack inside another anonymous region) is
// scanned whole: its part below SP may belong to something else.
func isThreadStack(maps []mapping, i int) bool {
	m := maps[i]
	if strings.HasPrefix(m.path, "[stack") {
		return true
	}
	if !m.anonymous() || !m.writable() || m.shared() || i == 0 {
		return false
	}
	guard := maps[i-1]
	return guard.end == m.start && guard.anonymous() && strings.HasPrefix(guard.perms, "---")
}

// scannable tells whether a mapping is root memory.
func scannable(m mapping) bool {
	if !m.readable() || !m.writable() {
		return false
	}
	if isSpecial(m) {
		return false
	}
	p := m.path
	sharedMemory := strings.HasPrefix(p, "/dev/") || strings.HasPrefix(p, "/memfd:") || strings.HasPrefix(p, "/SYSV")
	if m.shared() && strings.HasPrefix(p, "/") && !sharedMemory {
		// A shared mapping of a regular file (a database file, a log):
		// file contents hold no pointers into this process's heap, and
		// reading them all could mean reading gigabytes from disk.
		return false
	}
	return true
}

// scannedRanges yields the ranges of tracked blocks that are scanned when
// reached, in address order.
func (x *blockIndex) scannedRanges(yield func(span) bool) {
	for k := range x.starts {
		if x.scanEnd[k] <= x.starts[k] {
			continue
		}
		if !yield(span{x.starts[k], x.scanEnd[k]}) {
			return
		}
	}
}

// isSpecial tells whether a mapping is kernel or device memory, never
// scanned: the vDSO and its data, the vsyscall page, uprobes' page, kernel
// objects (perf ring buffers, DMA buffers, io_uring rings) and devices,
// where reading can have side effects or fail. Shared anonymous memory
// shows as /dev/zero and POSIX shared memory lives in /dev/shm: those are
// ordinary memory.
func isSpecial(m mapping) bool {
	p := m.path
	switch {
	case p == "[vvar]", p == "[vvar_vclock]", p == "[vsyscall]", p == "[vdso]", p == "[uprobes]":
		return true
	case strings.HasPrefix(p, "anon_inode:"):
		return true
	case strings.HasPrefix(p, "/dev/"):
		return !strings.HasPrefix(p, "/dev/zero") && !strings.HasPrefix(p, "/dev/shm/")
	}
	return false
}
