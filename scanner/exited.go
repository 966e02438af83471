package scanner

// glibc keeps the stacks of exited threads (joined or detached) in a cache
// of up to 40 MiB, to hand them to the next threads it creates: anonymous
// writable mappings above a guard page, with the dead thread's frames and
// its struct pthread (pd->arg included) intact. No live thread uses them,
// and LSan, which scans live threads only, never reads them: scanned as
// roots, they would hide every leak whose last pointer died with a thread.
//
// A cached stack is recognized positively, never by elimination: a mapping
// shaped like a thread stack that holds no live thread's stack pointer or
// thread pointer, and whose top holds a glibc thread descriptor (its tcb
// and self words point to itself) with no thread id: the kernel clears it
// when the thread exits (CLONE_CHILD_CLEARTID), and glibc sets it to -1
// when it puts the stack in its cache. A glibc arena heap right
// above another heap's PROT_NONE tail has the shape but no descriptor, so
// allocator memory is never taken for a stack.
//
// musl needs nothing: it unmaps a thread's stack when the thread is
// joined, or when a detached thread exits.

// glibc's struct pthread on x86-64 (2.26 to 2.40 at least): tcbhead_t
// starts it, with tcb at 0 and self at 16; tid follows at 0x2d0 (what
// %fs:0x2d0 reads in glibc's own code).
const (
	pthreadSelfOff = 16
	pthreadTidOff  = 0x2d0
	// The descriptor sits at the top of the stack mapping, aligned down
	// to the static TLS alignment: it lies within this window.
	descriptorWindow = 16 << 10
)

// exitedThreadStacks returns the indices of the mappings that are cached
// stacks of exited threads.
func exitedThreadStacks(rd *reader, maps []mapping, threads []threadRoot) map[int]bool {
	var out map[int]bool
	for i, m := range maps {
		if !isThreadStack(maps, i) || m.path != "" || holdsLiveThread(m, threads) {
			continue
		}
		if hasExitedDescriptor(rd, m) {
			if out == nil {
				out = map[int]bool{}
			}
			out[i] = true
		}
	}
	return out
}

// holdsLiveThread tells whether any live thread's stack or thread pointer
// lies in m; a thread whose registers are unknown might use any stack.
func holdsLiveThread(m mapping, threads []threadRoot) bool {
	for _, t := range threads {
		if !t.hasRegs {
			return true
		}
		if (t.sp >= m.start && t.sp < m.end) || (t.tp >= m.start && t.tp < m.end) {
			return true
		}
	}
	return false
}

// hasExitedDescriptor reads the top of m and looks for a glibc thread
// descriptor whose thread has exited.
func hasExitedDescriptor(rd *reader, m mapping) bool {
	lo := max(m.start, m.end-descriptorWindow)
	buf := alignedBuffer(int(m.end - lo))
	pieces, err := rd.read(buf, []taggedSpan{{span: span{lo, m.end}}}, nil)
	if err != nil || len(pieces) != 1 || pieces[0].start != lo || pieces[0].end != m.end {
		return false
	}
	word := func(a uint64) uint64 { o := a - lo; return leUint64(buf[o : o+8]) }
	for a := lo; a+pthreadTidOff+8 <= m.end; a += 64 {
		if word(a) != a || word(a+pthreadSelfOff) != a {
			continue
		}
		return int32(uint32(word(a+pthreadTidOff))) <= 0
	}
	return false
}
