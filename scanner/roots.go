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
	hasRegs bool
}

// rootPlan is the memory a check scans as roots.
type rootPlan struct {
	ranges      []span // sorted, disjoint
	mappings    int    // mappings that contributed
	unpopulated uint64 // bytes left out because their pages were never touched
}

// planRoots computes the root ranges:
//
//   - every readable, writable mapping (globals, [heap], anonymous memory:
//     TLS, thread stacks, blocks allocated before attach), except special
//     and device mappings and shared file mappings;
//   - minus the dead part of each thread's stack: a mapping recognized as a
//     thread stack is scanned only from the lowest stack pointer in it
//     upward (LSan scans [SP, stack end));
//   - minus the bytes of tracked blocks, which are scanned only when
//     reached;
//   - plus, for a thread whose stack pointer lies inside a tracked block
//     (a heap-allocated coroutine stack), that block from SP to its end.
//
// Large ranges in private mappings keep only their populated pages (pm may
// be nil: everything is read). Shared memory is read whole: its pages may
// be present in another process only.
func planRoots(maps []mapping, threads []threadRoot, ix *blockIndex, opts Options, pm pageMap) rootPlan {
	// deadLimit[i]: mapping i is a thread stack and is scanned from here.
	deadLimit := map[int]uint64{}
	var inBlock, onStack []span
	for _, t := range threads {
		if !t.hasRegs {
			// Without a stack pointer the whole stack mapping is scanned
			// (as LSan does when registers cannot be read).
			continue
		}
		low := t.sp
		if opts.ScanRedZone && low >= redZone {
			low -= redZone
		}
		mi := mappingAt(maps, t.sp)
		if mi < 0 || !maps[mi].readable() {
			continue // SP outside any mapping: no stack to scan
		}
		m := maps[mi]
		low = max(low, m.start)
		if k := ix.findScan(t.sp); k >= 0 {
			inBlock = append(inBlock, span{max(low, ix.starts[k]), ix.scanEnd[k]})
			continue
		}
		if !scannable(m) {
			// Not root memory by itself (say, a shared file mapping), but
			// the thread runs on it: its live part is a root.
			if !isSpecial(m) {
				onStack = append(onStack, span{low, m.end})
			}
			continue
		}
		if isThreadStack(maps, mi) {
			if cur, ok := deadLimit[mi]; !ok || low < cur {
				deadLimit[mi] = low
			}
		}
	}

	var ranges []span
	plan := rootPlan{}
	for i, m := range maps {
		if !scannable(m) {
			continue
		}
		start := m.start
		if lim, ok := deadLimit[i]; ok {
			start = lim
		}
		if start >= m.end {
			continue
		}
		plan.mappings++
		r := []span{{start, m.end}}
		if !m.shared() {
			r = keepPopulated(pm, r, &plan.unpopulated)
		}
		ranges = append(ranges, r...)
	}
	ranges = append(ranges, onStack...)
	ranges = normalize(ranges)
	// Subtracting the blocks leaves, between two neighbouring glibc
	// chunks, the next chunk's size field: allocator bookkeeping, never an
	// object (any allocation needs two words with its header). Kept, a
	// heap of tracked blocks would be read whole for those words.
	ranges = subtract(ranges, ix.scannedRanges, true)
	ranges = append(ranges, inBlock...)
	ranges = normalize(ranges)
	if !opts.ScanUnaligned {
		ranges = alignInward(ranges, 8)
	}
	plan.ranges = ranges
	return plan
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
