package scanner

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"time"
)

// Check freezes every thread of pid, calls snapshot while the target is
// stopped (the caller reads its allocation records there), reads the
// roots and scans, resumes the target and classifies the blocks snapshot
// returned. Checks run one at a time, on one goroutine locked to its OS
// thread (ptrace requires it); snapshot runs there too, and must not call
// Check itself.
//
// The target is resumed on every path: errors, a panic in snapshot or in
// the scan (returned as a *PanicError), and the death of this process
// (the kernel detaches the tracees of a tracer that exits). A thread that
// could not be stopped in time is detached as soon as it stops.
//
// Errors: ErrTargetExited (errors.Is) when the process is gone or exits
// during the check; a *TracedError (errors.Is ErrAlreadyTraced) when a
// debugger or strace already traces it; a permission error naming
// CAP_SYS_PTRACE when ptrace is denied.
func Check(pid int, snapshot func() ([]Block, error), opts Options) (*Result, error) {
	if snapshot == nil {
		return nil, errors.New("check: snapshot function is nil")
	}
	return CheckSnapshot(pid, func(forkedAt uint64) (Snapshot, error) {
		bs, err := snapshot()
		return Snapshot{Blocks: bs}, err
	}, opts)
}

// SnapshotFunc returns the tracked blocks and the freed memory. It is
// called with the target stopped, forkedAt 0; or, with Options.Fork, after
// the target has forked the copy that is scanned and resumed, forkedAt the
// CLOCK_MONOTONIC instant of the fork: blocks allocated and ranges freed
// after it are not in the copy, and must be left out.
type SnapshotFunc func(forkedAt uint64) (Snapshot, error)

// CheckSnapshot is Check with a snapshot that also says what memory the
// target freed (Snapshot.Freed).
func CheckSnapshot(pid int, snapshot SnapshotFunc, opts Options) (*Result, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("check pid %d: invalid pid", pid)
	}
	if snapshot == nil {
		return nil, errors.New("check: snapshot function is nil")
	}
	if threadGroupOf(pid) == os.Getpid() {
		return nil, fmt.Errorf("check pid %d: a process cannot stop itself with ptrace", pid)
	}
	o := runOnTracer(checkRequest{pid: threadGroupOf(pid), snapshot: snapshot, opts: opts})
	return o.res, o.err
}

// runCheck does the whole check, on the tracer's thread, with freezer f
// (new, or holding threads an earlier check of the process left seized).
func runCheck(f *freezer, snapshot SnapshotFunc, opts Options) (res *Result, err error) {
	start := time.Now()
	a, err := frozenPhase(f, snapshot, opts)
	var grew *errCopyGrew
	if errors.As(err, &grew) {
		// The copy cost too much: this check stops the target instead.
		opts.Fork = false
		if a, err = frozenPhase(f, snapshot, opts); err == nil {
			a.stats.ForkFallback = grew.Error()
		}
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, &PanicError{Value: r, Stack: debug.Stack()}
		}
	}()
	defer a.ix.release()
	res = a.result()
	res.Stats.Total = time.Since(start)
	return res, nil
}

// threadGroupOf maps a thread id to its process id; pids map to themselves.
func threadGroupOf(pid int) int {
	if st, err := readTaskStatus(pid, 0); err == nil && st.Tgid > 0 {
		return st.Tgid
	}
	return pid
}

// analysis is what the frozen phase found, in sorted block order.
type analysis struct {
	blocks []Block
	ix     *blockIndex
	edges  edgeList // sorted indices
	stats  Stats
}

// thawWait is how long a check's end waits for threads that were
// interrupted but have not stopped yet.
const thawWait = 200 * time.Millisecond

// frozenPhase stops the target, scans it and resumes it, whatever happens.
func frozenPhase(f *freezer, snapshot SnapshotFunc, opts Options) (a *analysis, err error) {
	pid := f.pid
	defer func() {
		if r := recover(); r != nil {
			a, err = nil, &PanicError{Value: r, Stack: debug.Stack()}
		}
		thawErr := f.thaw(thawWait)
		if a != nil && !f.firstStop.IsZero() && !a.stats.Forked {
			a.stats.Paused = time.Since(f.firstStop)
		}
		if err == nil && thawErr != nil {
			a, err = nil, thawErr
		}
		if err != nil && !errors.Is(err, ErrTargetExited) && processGone(pid) {
			err = fmt.Errorf("%w (%v)", ErrTargetExited, err)
		}
		if err == nil && !a.stats.Forked && processGone(pid) {
			// Killed while stopped: what was read may be partial (a
			// scan can end before the kernel takes the memory away).
			a, err = nil, fmt.Errorf("%w during the check", ErrTargetExited)
		}
	}()
	return scanFrozen(pid, f, snapshot, opts)
}

// scanFrozen is the work done while the target is stopped.
func scanFrozen(pid int, f *freezer, snapshot SnapshotFunc, opts Options) (a *analysis, err error) {
	var fplan forkPlan
	if opts.Fork {
		fplan = planFork(pid)
	}
	t0 := time.Now()
	if err := f.freeze(); err != nil {
		return nil, err
	}
	if err := f.readRegisters(); err != nil {
		return nil, err
	}
	threads := f.stoppedThreads()
	f.reapLeftIntermediates(threads)
	a = &analysis{}
	a.stats.Freeze = time.Since(t0)
	a.stats.Threads = len(threads)
	a.stats.FreezeRounds = f.rounds
	a.stats.SignalsHeld = f.signals

	var forkedAt uint64
	if opts.Fork {
		copyPid, at, ferr := f.forkAndResume(fplan, threads, &a.stats)
		if ferr != nil {
			return nil, ferr
		}
		if copyPid > 0 {
			defer killCopy(copyPid)
			pid, forkedAt = copyPid, at
			bound := opts.CopyLimit
			if bound == 0 {
				bound = copyBound(f.pid)
			}
			watch := watchCopy(copyPid, bound, opts.Cancel)
			opts.Cancel = watch.cancel
			defer func() {
				// A scan the bound cut short; one that ended anyway stands.
				if grew := watch.end(); grew != nil && errors.Is(err, ErrCanceled) {
					a, err = nil, grew
				}
			}()
		}
	}

	t1 := time.Now()
	snap, err := snapshot(forkedAt)
	if err != nil {
		return nil, fmt.Errorf("snapshot of tracked blocks: %w", err)
	}
	blocks := snap.Blocks
	if snap.Usable != nil && len(snap.Usable) != len(blocks) {
		return nil, fmt.Errorf("snapshot: %d usable sizes for %d blocks", len(snap.Usable), len(blocks))
	}
	t2 := time.Now()
	a.stats.Snapshot = t2.Sub(t1)
	a.blocks = blocks
	a.stats.Blocks = len(blocks)

	maps, err := readMaps(pid)
	if err != nil {
		return nil, err
	}
	if a.stats.Forked {
		a.stats.NotInCopy = bytesNotInCopy(f.pid)
	}
	// The copy is read through /proc/PID/mem: process_vm_readv pins the
	// pages it reads, and pinning a page the copy shares with the target
	// copies it (the kernel unshares anonymous pages for FOLL_PIN), which
	// would duplicate the heap as it is scanned.
	rd, err := newProcessReader(pid, opts.ForceProcMem || a.stats.Forked)
	if err != nil {
		return nil, err
	}
	defer rd.close()

	ix, bad, err := buildIndex(blocks, snap.Usable, opts, rd)
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done { // an error or a panic: nobody else will release it
			ix.release()
		}
	}()
	a.ix = ix
	a.stats.BadHeaders = bad

	roots := make([]threadRoot, len(threads))
	var regWords []uint64
	for i, t := range threads {
		roots[i] = threadRoot{tid: t.tid, sp: t.sp(), hasRegs: t.hasRegs}
		if t.hasRegs {
			roots[i].tp = threadPointer(&t.regs)
		}
		if !opts.NoRegisters {
			regWords = append(regWords, t.registerWords()...)
		}
	}
	var pm pageMap
	if p, err := openPagemap(pid); err == nil {
		defer p.close()
		pm = p
	}
	facts := findRootFacts(pid, rd, maps, roots, snap.Freed, snap.Reused, opts)
	plan := planRoots(maps, roots, ix, opts, facts, pm)
	a.stats.Mappings = plan.mappings
	a.stats.ExitedStacks = len(facts.exited)
	a.stats.FreedBytes = plan.freedBytes
	jemalloc := usesJemalloc(blocks, opts)
	if jemalloc {
		var tps []uint64
		for _, t := range threads {
			if t.hasRegs {
				tps = append(tps, threadPointer(&t.regs))
			}
		}
		stale := jemallocStaleSlots(rd, maps, tps)
		plan.ranges = subtract(plan.ranges, spansOf(stale), false)
	}

	t3 := time.Now()
	a.stats.Index = t3.Sub(t2)
	m := newMarker(ix, rd, opts, jemalloc)
	m.pm = pm
	m.maps = maps
	m.markWords(regWords)
	m.markWords(rootBlocks(blocks))
	if err := m.markRoots(plan.ranges); err != nil {
		return nil, err
	}
	t4 := time.Now()
	a.stats.Mark = t4.Sub(t3)
	if err := m.scanUnreachable(); err != nil {
		return nil, err
	}
	a.stats.Unreachable = time.Since(t4)
	a.edges = m.edges
	a.stats.RootBytes = m.rootBytes
	a.stats.BlockBytes = m.blockBytes
	a.stats.ScannedBytes = rd.readBytes
	a.stats.UnreadableBytes = rd.unreadableBytes + a.stats.NotInCopy
	a.stats.UntouchedBytes = plan.unpopulated + m.unpopulated
	done = true
	return a, nil
}

// findRootFacts reads what planRoots needs to know beyond the mappings
// and threads.
func findRootFacts(pid int, rd *reader, maps []mapping, threads []threadRoot, freed, reused []Range, opts Options) rootFacts {
	facts := rootFacts{exited: exitedThreadStacks(rd, maps, threads)}
	if opts.Roots == RootsLSan || opts.NoGlobals || opts.NoTLS {
		var tlsSize uint64
		facts.modules, tlsSize = loadedModules(pid, maps)
		facts.tls = staticTLS(maps, threads, findTLSLayout(pid, rd, maps, tlsSize))
	}
	if opts.Roots == RootsAttach && len(freed) > 0 {
		facts.freed = freedNotReused(freed, reused)
	}
	return facts
}

// freedNotReused is the freed memory left out of the roots: sorted,
// disjoint, without what was handed out again (Snapshot.Reused).
func freedNotReused(freed, reused []Range) []span {
	spans := make([]span, 0, len(freed))
	for _, r := range freed {
		spans = append(spans, span{r.Addr, satAdd(r.Addr, r.Size)})
	}
	return subtract(normalize(spans), spansOfRanges(reused), false)
}

// rootBlocks returns the address of every block marked Root: marked like
// a pointer found in a register, each is reached and scanned.
func rootBlocks(blocks []Block) []uint64 {
	var out []uint64
	for _, b := range blocks {
		if b.Root {
			out = append(out, b.Addr)
		}
	}
	return out
}

// buildIndex computes every block's usable size and indexes the blocks;
// usable holds the usable sizes the tracer gave (Snapshot.Usable).
func buildIndex(blocks []Block, usable []uint64, opts Options, rd *reader) (*blockIndex, int, error) {
	x := newSortedIndex(len(blocks), func(i int) uint64 { return blocks[i].Addr })
	sz := &sizer{blocks: blocks, usable: usable, opts: opts, x: x}
	unknown := sz.setKnownSizes()
	bad, err := sz.setSizesFromHeaders(rd, unknown)
	if err == nil && opts.ExactBounds {
		err = acceptArrayCookieEnds(rd, x, blocks)
	}
	if err != nil {
		x.release()
		return nil, 0, err
	}
	x.finish()
	return x, bad, nil
}

// arrayCookieSize is the size of the Itanium C++ ABI's array cookie on
// 64-bit targets: new T[0] of a type with a destructor allocates just the
// cookie (the element count, 0) and returns the address past it.
const arrayCookieSize = 8

// acceptArrayCookieEnds lets a pointer one past the end of an 8-byte block
// whose first word is 0 point into it: the array new T[0] returned. LSan
// accepts exactly this one-past-end pointer (IsSpecialCaseOfOperatorNew0).
func acceptArrayCookieEnds(rd *reader, x *blockIndex, blocks []Block) error {
	var ks []int
	var addrs []uint64
	for k, i := range x.orig {
		b := x.boundsOf(k)
		if blocks[i].Size == arrayCookieSize && b.end == b.start+arrayCookieSize && x.scanEnd[k] > b.end {
			ks = append(ks, k)
			addrs = append(addrs, b.start)
		}
	}
	if len(ks) == 0 {
		return nil
	}
	words, ok, err := readWordsAt(rd, addrs)
	if err != nil {
		return err
	}
	for j, k := range ks {
		if ok[j] && words[j] == 0 {
			x.ends[k]++
		}
	}
	return nil
}

// sizer sets the sorted blocks' sizes in the index.
type sizer struct {
	blocks []Block
	usable []uint64 // Snapshot.Usable: nil, or parallel to blocks
	opts   Options
	x      *blockIndex
}

// sizePart: sorted positions per part of the parallel size pass.
const sizePart = 1 << 16

// setKnownSizes sets the size of every block whose usable size is known
// without reading the target — given by the tracer, following from the
// glibc heap layout, or computed — and returns, in sorted order, the
// positions of the others, whose glibc chunk headers must be read. It is
// one pass over the blocks (each caller's record is read once, at random:
// the snapshot comes in no order), in parallel parts. Only the fields it
// needs are read: of the 24-byte records, a quarter straddle two cache
// lines, but only an eighth of their sizes and allocators do.
func (s *sizer) setKnownSizes() []int32 {
	n := s.x.n()
	parts := (n + sizePart - 1) / sizePart
	unknown := make([][]int32, parts)
	forEachPart(parts, func(p int) {
		for k := p * sizePart; k < min(n, (p+1)*sizePart); k++ {
			i := s.x.orig[k]
			b := &s.blocks[i]
			size := b.Size
			usable, glibcChunk, ok := s.knownUsable(k, size, b.allocator(s.opts), s.given(i))
			if !ok {
				unknown[p] = append(unknown[p], int32(k))
				continue
			}
			s.set(k, size, usable, glibcChunk)
		}
	})
	return slices.Concat(unknown...)
}

// given is the usable size the tracer gave for block i (0: none).
func (s *sizer) given(i int32) uint64 {
	if s.usable == nil {
		return 0
	}
	return s.usable[i]
}

// knownUsable returns block k's usable size when it is known without its
// chunk header (given: the tracer's, 0 if none); ok is false when the
// header must be read.
func (s *sizer) knownUsable(k int, size uint64, alloc Allocator, given uint64) (usable uint64, glibcChunk, ok bool) {
	switch {
	case given != 0 && given >= size:
		// A glibc heap chunk's usable size is 8 bytes short of a
		// multiple of 16 (an mmapped chunk's is 16 short).
		glibcChunk = alloc == Glibc && (given+glibcSizeSz)%glibcAlign == 0
		return given, glibcChunk, true
	case alloc == Glibc:
		if glibcTiled(s.x.starts, k, size) {
			return glibcUsableFromRequest(size), true, true
		}
		return 0, false, false
	case alloc == Jemalloc:
		return jemallocUsable(size), false, true
	}
	return unknownUsable(size), false, true
}

// set sets the sizes of block k, of the requested size.
func (s *sizer) set(k int, size, usable uint64, glibcChunk bool) {
	accept := usable
	if s.opts.ExactBounds {
		accept = max(size, 1) // LSan counts malloc(0) as one byte
	}
	s.x.setSizes(k, accept, usable, glibcChunk)
}

// setSizesFromHeaders reads the glibc chunk headers of the blocks at the
// sorted positions ks and sets their sizes; a header that cannot be read
// or does not fit falls back to the request's chunk, and is counted.
func (s *sizer) setSizesFromHeaders(rd *reader, ks []int32) (bad int, err error) {
	if len(ks) == 0 {
		return 0, nil
	}
	headers, readOK, err := readGlibcHeaders(rd, s.x.starts, ks)
	if err != nil {
		return 0, err
	}
	for i, k := range ks {
		size := s.blocks[s.x.orig[k]].Size
		c, ok := decodeGlibcHeader(headers[i], size)
		if readOK[i] && ok {
			s.set(int(k), size, c.usable, !c.mmapped)
			continue
		}
		s.set(int(k), size, glibcUsableFromRequest(size), true)
		bad++
	}
	return bad, nil
}

// glibcTiled tells whether block k's usable size (starts sorted, req its
// request) follows from the layout without reading its chunk header:
// glibc's heap chunks tile their arena, so when the next block starts
// exactly the smallest chunk for this block's request after it, the chunk
// can be no larger (the next chunk begins there) and no smaller (malloc
// never gives less), and is a heap chunk (an mmapped chunk is at least a
// page rounded up from the request plus 8 bytes, so the next block would
// lie further away). Its usable size is then the request's, computed. In a
// heap of tracked blocks allocated one after the other this spares reading
// almost every header — a second pass over the whole heap.
func glibcTiled(starts []uint64, k int, req uint64) bool {
	return k+1 < len(starts) && req < glibcMaxRequest &&
		starts[k+1]-starts[k] == glibcChunkFromRequest(req)
}

// headerWindowGap: headers closer than this are read in one range rather
// than one 8-byte read each.
const headerWindowGap = 2048

// readGlibcHeaders reads the chunk header (the size word at Addr-8) of
// the blocks at the sorted positions ks (ascending). ok[i] is false where
// it could not be read.
func readGlibcHeaders(rd *reader, starts []uint64, ks []int32) (words []uint64, ok []bool, err error) {
	addrs := make([]uint64, len(ks))
	for i, k := range ks {
		if s := starts[k]; s >= glibcSizeSz {
			addrs[i] = s - glibcSizeSz
		}
	}
	return readWordsAt(rd, addrs)
}

// readWordsAt reads the 8-byte word at each address (sorted ascending; 0:
// none).
// Close addresses are read together in one range; the ranges are shared
// among a few goroutines. ok[i] is false where the word could not be read.
func readWordsAt(rd *reader, addrs []uint64) ([]uint64, []bool, error) {
	words := make([]uint64, len(addrs))
	ok := make([]bool, len(addrs))
	windows := wordWindows(addrs)
	workers := min(runtime.GOMAXPROCS(0), 4, max(1, len(windows)/64))
	forks := make([]*reader, workers)
	for w := range forks {
		forks[w] = rd.fork()
	}
	errs := make([]error, workers)
	forEachPart(workers, func(w int) {
		lo, hi := partBounds(len(windows), workers, w)
		errs[w] = readWindows(forks[w], windows[lo:hi], addrs, words, ok)
	})
	for w := range forks {
		rd.join(forks[w])
	}
	if err := firstError(errs); err != nil {
		return nil, nil, err
	}
	return words, ok, nil
}

// wordWindow is a range to read that holds addrs[first:last].
type wordWindow struct {
	span
	first, last int
}

// wordWindows groups sorted addresses into ranges: an address closer than
// headerWindowGap to the current range extends it.
func wordWindows(addrs []uint64) []wordWindow {
	var windows []wordWindow
	for i, a := range addrs {
		if a == 0 {
			continue
		}
		if n := len(windows); n > 0 {
			w := &windows[n-1]
			if a+8 <= w.end || (a < w.end+headerWindowGap && a+8-w.start <= readBufSize) {
				w.end = max(w.end, a+8)
				w.last = i + 1
				continue
			}
		}
		windows = append(windows, wordWindow{span{a, a + 8}, i, i + 1})
	}
	return windows
}

// readWindows reads windows in batches and stores the words they hold.
func readWindows(rd *reader, windows []wordWindow, addrs, words []uint64, ok []bool) error {
	// As big as the windows need, up to readBufSize: a few words (the TLS
	// layout, a handful of headers) must not cost zeroing 4 MiB.
	need := 0
	for _, w := range windows {
		need += int(w.size())
	}
	buf := alignedBuffer(min(readBufSize, max(need, 4096)))
	var batch []taggedSpan
	var pieces []piece
	total := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		var err error
		pieces, err = rd.read(buf, batch, pieces[:0])
		if err != nil {
			return err
		}
		for _, p := range pieces {
			w := windows[p.tag]
			for i := w.first; i < w.last; i++ {
				a := addrs[i]
				if a == 0 || a < p.start || a+8 > p.end {
					continue
				}
				o := p.off + int(a-p.start)
				words[i] = leUint64(buf[o : o+8])
				ok[i] = true
			}
		}
		batch = batch[:0]
		total = 0
		return nil
	}
	for wi, w := range windows {
		if total+int(w.size()) > len(buf) || len(batch) == maxIovecs {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(batch, taggedSpan{w.span, int32(wi)})
		total += int(w.size())
	}
	return flush()
}

func leUint64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// result turns the analysis into the caller's order and classifies. It
// releases the index once read, before the edges are gathered and the
// blocks classified in memory of their own.
func (a *analysis) result() *Result {
	reach, dups := a.reachedInCallerOrder()
	a.edgesInCallerOrder()
	a.ix.release()
	edges := dedupEdges(a.edges.slice())
	res := &Result{
		Blocks:     a.blocks,
		Edges:      edges,
		Stats:      a.stats,
		duplicates: dups,
	}
	res.Classes = classify(reach, edges, nil)
	for dup, orig := range dups {
		res.Classes[dup] = res.Classes[orig]
	}
	for _, c := range res.Classes {
		switch c {
		case Reachable:
			res.Stats.Reachable++
		case Direct:
			res.Stats.Direct++
		case Indirect:
			res.Stats.Indirect++
		}
	}
	return res
}

// reachedInCallerOrder reads the reached bits (the target runs again:
// they are read only now) into the caller's order, and maps each block
// listed again at the same address to its first listing.
func (a *analysis) reachedInCallerOrder() (reach []bool, dups map[int32]int32) {
	reach = make([]bool, len(a.blocks))
	canon := -1
	for k, i := range a.ix.orig {
		if a.ix.flags[k]&flagDuplicate != 0 && canon >= 0 {
			if dups == nil {
				dups = map[int32]int32{}
			}
			dups[i] = a.ix.orig[canon]
			reach[i] = a.ix.isReached(canon)
			continue
		}
		canon = k
		reach[i] = a.ix.isReached(k)
	}
	return reach, dups
}

// edgesInCallerOrder turns the edges' sorted indices into the caller's,
// in place (a million leaked blocks can hold a million edges).
func (a *analysis) edgesInCallerOrder() {
	for _, c := range a.edges.chunks {
		for j, e := range c {
			c[j] = Edge{From: a.ix.orig[e.From], To: a.ix.orig[e.To]}
		}
	}
}

// firstError returns the first non-nil error: workers that fail together
// fail for the same reason (the target exited), which is said once.
func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
