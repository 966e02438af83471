package scanner

import (
	"encoding/binary"
	"fmt"
	"iter"
	"math/bits"
	"runtime"
	"runtime/debug"
	"slices"
	"sync/atomic"
)

const (
	// readBufSize is the most memory one worker reads per batch.
	readBufSize = 4 << 20
	// mergeGap: ranges closer than this are read as one range, gap
	// included. An iovec costs process_vm_readv about as much as copying
	// a KiB or so, so reading small gaps is cheaper than splitting.
	mergeGap = 1 << 10
	// unalignedOverlap: when a range is read in several chunks and every
	// byte offset is tested, each chunk overlaps the next by 7 bytes so
	// that no 8-byte window is lost at a chunk boundary.
	unalignedOverlap = 7
	// maxWorkers bounds the goroutines that read and scan in parallel.
	maxWorkers = 8
)

// marker runs the conservative scan: it marks the blocks reachable from
// the roots (flood fill with an explicit work list), then scans the blocks
// left unreachable and records the pointers between them.
//
// Scanning is done by workers, each reading and scanning its own batches:
// the index is read-only, a block is marked with a compare-and-swap, and
// the blocks a worker reaches and the edges it finds are merged when a
// round ends.
type marker struct {
	ix        *blockIndex
	rd        *reader
	pm        pageMap   // nil: large blocks are read whole
	maps      []mapping // nil: read-ahead windows are not clipped
	unaligned bool
	// jemalloc: skip words that are the e_addr of jemalloc's extent
	// metadata (see isEdataAddr).
	jemalloc bool
	// cancel, once closed, stops the scan between batches (Options.Cancel).
	cancel <-chan struct{}

	work []int32 // reached blocks not scanned yet (found by roots and list rounds)
	// spill holds, during the flood, the reached blocks a batch found
	// beyond workListMax (one bit each, by sorted index), and spilled
	// says it holds some: see spillAdd.
	spill   []uint64
	spilled atomic.Bool
	radix   []int32 // scratch for sorting the work list
	segs    []taggedSpan

	leakPhase bool
	edges     edgeList // sorted indices

	workers []*scanWorker

	rootBytes, blockBytes uint64
	unpopulated           uint64 // bytes of large blocks never touched, not read
}

// scanWorker holds one worker's buffers and findings.
type scanWorker struct {
	m      *marker
	rd     *reader
	buf    []byte // 8-byte aligned read buffer
	pieces []piece

	// Candidates: the words of the current batch that fall in the blocks'
	// address range, with the segment they came from (its tag) and, for
	// jemalloc, their neighbours. They are resolved together.
	candW          []uint64
	candK          []int32
	tagRuns        []tagRun // the candidates' tags: one entry per segment
	candPrev, next []uint64
	n              int

	ahead      []aheadSlot // read-ahead windows (see readAhead)
	aheadClock uint64

	// The batch being scanned: blocks reached while scanning it whose
	// bytes are in it are scanned from it at once (local), not queued.
	cur      []piece
	curBuf   []byte
	local    []int32
	localSeg []taggedSpan

	work                  []int32
	edges                 edgeList
	rootBytes, blockBytes uint64
}

func newMarker(ix *blockIndex, rd *reader, opts Options, jemalloc bool) *marker {
	m := &marker{
		ix:        ix,
		rd:        rd,
		unaligned: opts.ScanUnaligned,
		jemalloc:  jemalloc,
		cancel:    opts.Cancel,
	}
	m.workers = []*scanWorker{m.newWorker(rd)}
	return m
}

// candidatesMax is how many candidate words a worker collects before it
// resolves them: a full buffer of words.
const candidatesMax = 16 << 10

func (m *marker) newWorker(rd *reader) *scanWorker {
	w := &scanWorker{
		m:     m,
		rd:    rd,
		candW: make([]uint64, candidatesMax),
		candK: make([]int32, candidatesMax),
	}
	if m.jemalloc {
		w.candPrev = make([]uint64, candidatesMax)
		w.next = make([]uint64, candidatesMax)
	}
	return w
}

// growBuffer gives the worker a read buffer of at least n bytes (at most
// readBufSize, which batches never exceed): grown as batches need it, so
// that a check of a small process does not zero 4 MiB per worker.
func (w *scanWorker) growBuffer(n int) {
	if len(w.buf) >= min(n, readBufSize) {
		return
	}
	size := 64 << 10
	for size < n && size < readBufSize {
		size *= 4
	}
	w.buf = alignedBuffer(min(size, readBufSize))
}

// isReached tells whether sorted block k was reached.
func (m *marker) isReached(k int) bool { return m.ix.isReached(k) }

// markWords marks the blocks that words point into (register values).
func (m *marker) markWords(ws []uint64) {
	w := m.workers[0]
	for _, v := range ws {
		w.addWords([]uint64{v}, -1) // no neighbours: registers are not memory
	}
	w.resolve()
	m.collect()
}

// markRoots scans the root ranges (sorted, disjoint) and floods from them.
func (m *marker) markRoots(roots []span) error {
	f := m.newFlooder()
	f.addAll(m.work)
	m.work = m.work[:0]
	m.segs = m.segs[:0]
	for _, r := range roots {
		m.segs = append(m.segs, taggedSpan{r, -1})
	}
	if err := m.scanSegments(m.segs, f.addAll); err != nil {
		return err
	}
	return f.flood()
}

// queue keeps reached blocks in m.work, which collect fills too (the
// leak pass reaches none: it records edges).
func (m *marker) queue(work []int32) { m.work = append(m.work, work...) }

// flood scans reached blocks until no new block is reached, with an
// explicit work list (a long list must not recurse).
//
// It works in sweeps over the blocks in address order: the blocks waiting
// to be scanned are bits in a bitmap, batches are cut from the cursor on,
// and a block found ahead of the cursor is scanned in the same sweep — a
// list allocated in address order is flooded in one sweep, and a dense
// heap is read about once per sweep, not once per level of the graph.
// Sweeps alternate direction, so lists built in either order go in one.
// When few blocks wait, they are taken from a list instead of by walking
// the bitmap.
func (f *flooder) flood() error {
	defer func() { f.m.spill = nil }()
	forward := true
	for f.takeSpilled(); f.count > 0; f.takeSpilled() {
		var err error
		if f.count < f.few && !f.listFull {
			err = f.listRound()
		} else {
			err = f.sweep(forward)
			forward = !forward
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// flooder holds the blocks waiting to be scanned.
type flooder struct {
	m     *marker
	bits  []uint64 // by sorted index
	count int
	// few: below this many blocks waiting, they are taken from the list.
	few int
	// list holds the blocks added since it was last emptied; some may
	// have been scanned already (their bit is clear). It holds 2*few at
	// most: when more come (a block pointing to a million others), it is
	// full, and only a sweep finds the blocks left out — the bitmap has
	// them, a list of them all would take 4 bytes each.
	list     []int32
	listFull bool
	spare    []int32 // the other list buffer
	segs     []taggedSpan
	ks       []int32   // the blocks of the batch being cut
	freeSegs []*segBuf // sweeps' segment buffers no batch uses
}

func (m *marker) newFlooder() *flooder {
	n := m.ix.n()
	m.spill = make([]uint64, (n+63)/64)
	return &flooder{m: m, bits: make([]uint64, (n+63)/64), few: n/64 + 64}
}

// takeSpilled moves the blocks the workers spilled (see spillAdd) to the
// waiting ones; it runs between rounds, with no batch in flight. They
// are not on the list: the next round is a sweep, which finds them.
func (f *flooder) takeSpilled() {
	m := f.m
	if !m.spilled.Load() {
		return
	}
	m.spilled.Store(false)
	for i, w := range m.spill {
		if w == 0 {
			continue
		}
		m.spill[i] = 0
		f.count += bits.OnesCount64(w &^ f.bits[i])
		f.bits[i] |= w
	}
	f.listFull = true
}

func (f *flooder) addAll(ks []int32) {
	for _, k := range ks {
		bit := uint64(1) << (k % 64)
		if f.bits[k/64]&bit == 0 {
			f.bits[k/64] |= bit
			f.count++
			f.listAdd(k)
		}
	}
}

func (f *flooder) listAdd(k int32) {
	if len(f.list) == 2*f.few {
		f.listFull = true
	}
	if !f.listFull {
		f.list = append(f.list, k)
	}
}

// take clears block k's bit; false if it was not waiting.
func (f *flooder) take(k int32) bool {
	bit := uint64(1) << (k % 64)
	if f.bits[k/64]&bit == 0 {
		return false
	}
	f.bits[k/64] &^= bit
	f.count--
	return true
}

// listRound scans the waiting blocks of the list, as one level of a
// breadth-first flood.
func (f *flooder) listRound() error {
	m := f.m
	batch := f.list[:0] // filtered in place
	for _, k := range f.list {
		if f.take(k) {
			batch = append(batch, k)
		}
	}
	f.list, f.spare = f.spare[:0], batch
	m.radix = sortIndices(batch, m.radix)
	f.segs = f.segs[:0]
	for _, k := range batch {
		f.segs = m.appendBlock(f.segs, k)
	}
	return m.scanSegments(f.segs, f.addAll)
}

// sweep walks the bitmap once, forward or backward, handing batches to
// the workers as they are cut.
func (f *flooder) sweep(forward bool) error {
	m := f.m
	n := m.ix.n()
	cursor := 0 // next block to look at, forward; one past it, backward
	if !forward {
		cursor = n
	}
	var pending []batchPlan // cut but not yet handed out
	// The sweep finds every block waiting now: the list starts again,
	// with the blocks added behind the cursor.
	f.list, f.listFull = f.list[:0], false
	next := func() *batchPlan {
		for len(pending) == 0 {
			if (forward && cursor >= n) || (!forward && cursor <= 0) {
				return nil
			}
			pending = f.cutBatch(&cursor, forward)
		}
		p := &pending[0]
		pending = pending[1:]
		return p
	}
	err := m.runPool(next, f.batchDone)
	m.collect()
	return err
}

// segBuf holds the segments of one batch a sweep cut, shared by the plans
// made of them. Once the last is done it is used again, not left to the
// collector: a sweep over a million reached blocks cuts 24 MiB of them.
type segBuf struct {
	segs  []taggedSpan
	plans int // plans not done yet
}

// newSegBuf returns an empty buffer, used before if one is free.
func (f *flooder) newSegBuf() *segBuf {
	n := len(f.freeSegs)
	if n == 0 {
		return &segBuf{}
	}
	b := f.freeSegs[n-1]
	f.freeSegs = f.freeSegs[:n-1]
	b.segs = b.segs[:0]
	return b
}

// batchDone files the blocks a sweep's batch reached, and frees its
// segments' buffer once the buffer's last batch is done.
func (f *flooder) batchDone(p *batchPlan, work []int32) {
	f.addAll(work)
	if b := p.buf; b != nil {
		if b.plans--; b.plans == 0 {
			f.freeSegs = append(f.freeSegs, b)
		}
	}
}

// cutBatch collects the waiting blocks from the cursor on until they fill
// a read buffer, and plans their reads: as one window over their whole
// address range when they lie close enough together (see windowBatch), or
// as separate ranges.
func (f *flooder) cutBatch(cursor *int, forward bool) []batchPlan {
	m := f.m
	n := m.ix.n()
	ks := f.ks[:0]
	var win windowBatch
	win.open = m.maps != nil
	total := uint64(0)
	for {
		k := f.nextWaiting(*cursor, forward)
		if k < 0 {
			if forward {
				*cursor = n
			} else {
				*cursor = 0
			}
			break
		}
		s := span{m.ix.starts[k], m.ix.scanEnd[k]}
		if win.open && !win.add(s) {
			if win.worth() {
				break // the window is full: k waits for the next batch
			}
			win.open = false
		}
		if !win.open && (total >= readBufSize || len(ks) >= maxIovecs) {
			break
		}
		if len(ks) >= batchBlocksMax {
			break
		}
		f.take(int32(k))
		ks = append(ks, int32(k))
		total += s.size()
		if forward {
			*cursor = k + 1
		} else {
			*cursor = k
		}
	}
	f.ks = ks
	if !forward {
		slices.Reverse(ks)
	}
	buf := f.newSegBuf()
	// One segment a block, but for large ones split into their pages:
	// grown once, not step by step.
	buf.segs = slices.Grow(buf.segs, len(ks))
	for _, k := range ks {
		buf.segs = m.appendBlock(buf.segs, k)
	}
	var plans []batchPlan
	if win.open && win.worth() && len(buf.segs) > 0 && withinOneMapping(m.maps, win.span) {
		plans = []batchPlan{{
			segs:   buf.segs,
			reads:  []taggedSpan{{win.span, 0}},
			window: true,
		}}
	} else {
		plans = m.planBatches(buf.segs)
	}
	for i := range plans {
		plans[i].buf = buf
	}
	if buf.plans = len(plans); buf.plans == 0 {
		f.freeSegs = append(f.freeSegs, buf)
	}
	return plans
}

// batchBlocksMax bounds the blocks of one sweep batch. A window of small
// blocks holds up to ~87 Ki of them (48-byte chunks in 4 MiB), whose
// 24-byte segments took 2 MiB a batch, five batches cut or in flight:
// ~10 MiB of a million-block check. 16 Ki blocks still make a window of
// 768 KiB or more, whose read costs far more than handing a batch over.
const batchBlocksMax = 16 << 10

// windowBatch accumulates the blocks of a batch that may be read as one
// window: the address range from the first to the last, gaps and blocks
// not (yet) reached included. A window is worth it when reading it whole
// costs less than windowGain times reading the blocks as separate ranges
// (each range costs process_vm_readv about iovecCost bytes of copying):
// fewer system calls, and the blocks the batch reaches inside the window
// are scanned from it at once (scanLocal).
type windowBatch struct {
	open   bool
	span   span
	blocks uint64 // bytes of the blocks
	ranges uint64 // separate ranges they would be read as
	last   span   // the block added last
}

const (
	iovecCost  = 2 << 10
	windowGain = 4
)

// add extends the window by block s; false (and nothing added) if s is
// large or the window would not fit a read buffer.
func (b *windowBatch) add(s span) bool {
	if s.size() >= sparseMin {
		return false
	}
	u := s
	if b.ranges > 0 {
		u = span{min(b.span.start, s.start), max(b.span.end, s.end)}
	}
	if u.size() > readBufSize {
		return false
	}
	if b.ranges == 0 || gapBetween(b.last, s) > mergeGap {
		b.ranges++
	}
	b.span, b.last = u, s
	b.blocks += s.size()
	return true
}

// gapBetween is the distance between two disjoint ranges.
func gapBetween(a, b span) uint64 {
	if a.end <= b.start {
		return b.start - a.end
	}
	if b.end <= a.start {
		return a.start - b.end
	}
	return 0
}

// worth tells whether reading the window whole beats separate reads.
func (b *windowBatch) worth() bool {
	return b.ranges > 0 && b.span.size() <= windowGain*(b.blocks+b.ranges*iovecCost)
}

// withinOneMapping tells whether s lies inside one mapping: a window must
// not run over a hole between mappings (or into a device mapping).
func withinOneMapping(maps []mapping, s span) bool {
	i := mappingAt(maps, s.start)
	return i >= 0 && maps[i].end >= s.end
}

// nextWaiting finds the first waiting block at or after from (forward),
// or the last one before from (backward); -1 if none.
func (f *flooder) nextWaiting(from int, forward bool) int {
	if forward {
		for i := from / 64; i < len(f.bits); i++ {
			word := f.bits[i]
			if i == from/64 {
				word &^= (uint64(1) << (from % 64)) - 1
			}
			if word != 0 {
				return i*64 + bits.TrailingZeros64(word)
			}
		}
		return -1
	}
	if from <= 0 {
		return -1
	}
	last := from - 1
	for i := last / 64; i >= 0; i-- {
		word := f.bits[i]
		if i == last/64 && last%64 != 63 {
			word &= (uint64(1) << (last%64 + 1)) - 1
		}
		if word != 0 {
			return i*64 + 63 - bits.LeadingZeros64(word)
		}
	}
	return -1
}

// scanUnreachable scans every block that was not reached and records
// which unreachable blocks point into which (LSan's indirect pass). The
// blocks go in parts of unreachedPart, so that a million leaked blocks
// do not need a million segments at once.
func (m *marker) scanUnreachable() error {
	m.leakPhase = true
	n := len(m.ix.starts)
	for lo := 0; lo < n; {
		m.segs = m.segs[:0]
		k := lo
		for ; k < n && len(m.segs) < unreachedPart; k++ {
			if m.isReached(k) || m.ix.flags[k]&flagDuplicate != 0 {
				continue
			}
			m.segs = m.appendBlock(m.segs, int32(k))
		}
		if err := m.scanSegments(m.segs, m.queue); err != nil {
			return err
		}
		lo = k
	}
	return nil
}

// unreachedPart is how many unreachable blocks are scanned at a time.
const unreachedPart = 1 << 16

// appendBlock adds block k's scanned bytes as segments: a large block
// keeps only its populated pages.
func (m *marker) appendBlock(segs []taggedSpan, k int32) []taggedSpan {
	s := span{m.ix.starts[k], m.ix.scanEnd[k]}
	if !m.unaligned {
		s = span{roundUp(s.start, 8), s.end &^ 7}
	}
	if s.end <= s.start {
		return segs
	}
	if s.size() < sparseMin || m.pm == nil {
		return append(segs, taggedSpan{s, k})
	}
	for _, p := range keepPopulated(m.pm, []span{s}, &m.unpopulated) {
		segs = append(segs, taggedSpan{p, k})
	}
	return segs
}

// batchPlan is one read: the segments it serves and the ranges it reads
// (neighbouring segments merged).
type batchPlan struct {
	segs, reads []taggedSpan
	// window: reads is one range spanning all segs, gaps included.
	window bool
	// buf holds segs, when a sweep cut them (nil otherwise).
	buf *segBuf
}

// planBatches groups segments sorted by address into reads that fit a
// buffer. Neighbours closer than mergeGap are read as one range; a segment
// larger than half the buffer is read alone, in chunks.
func (m *marker) planBatches(segs []taggedSpan) []batchPlan {
	var plans []batchPlan
	start, total := 0, 0 // the batch is segs[start:i], needing total bytes
	flush := func(end int) {
		if end > start {
			plans = append(plans, batchPlan{segs: segs[start:end], reads: mergeReads(segs[start:end])})
		}
		start, total = end, 0
	}
	for i := 0; i < len(segs); i++ {
		s := segs[i]
		if s.size() > readBufSize/2 {
			flush(i)
			plans = append(plans, m.chunks(s)...)
			start = i + 1
			continue
		}
		need := int(s.size())
		if i > start && s.start >= segs[i-1].end && s.start-segs[i-1].end <= mergeGap {
			need += int(s.start - segs[i-1].end) // read along with the previous one
		}
		if total+need > readBufSize || i-start >= maxIovecs {
			flush(i)
			need = int(s.size())
		}
		total += need
	}
	flush(len(segs))
	return plans
}

// chunks splits a large segment into buffer-sized reads.
func (m *marker) chunks(s taggedSpan) []batchPlan {
	var plans []batchPlan
	for s.start < s.end {
		chunk := s
		chunk.end = min(s.end, s.start+readBufSize)
		one := []taggedSpan{chunk}
		plans = append(plans, batchPlan{segs: one, reads: one})
		if chunk.end == s.end {
			break
		}
		s.start = chunk.end
		if m.unaligned {
			s.start -= unalignedOverlap
		}
	}
	return plans
}

// mergeReads turns sorted segments into the ranges to read.
// The slice is sized exactly: a thousand blocks side by side are one
// range, and a check plans batches for a million leaked blocks.
func mergeReads(segs []taggedSpan) []taggedSpan {
	n := 0
	for range mergedSpans(segs) {
		n++
	}
	reads := make([]taggedSpan, 0, n)
	for s := range mergedSpans(segs) {
		reads = append(reads, taggedSpan{s, 0})
	}
	return reads
}

// mergedSpans yields the ranges to read for sorted segments: neighbours
// closer than mergeGap are one range.
func mergedSpans(segs []taggedSpan) iter.Seq[span] {
	return func(yield func(span) bool) {
		if len(segs) == 0 {
			return
		}
		cur := segs[0].span
		for _, s := range segs[1:] {
			if s.start >= cur.end && s.start-cur.end <= mergeGap {
				cur.end = max(cur.end, s.end)
				continue
			}
			if !yield(cur) {
				return
			}
			cur = s.span
		}
		yield(cur)
	}
}

// scanSegments reads and scans segments sorted by address, in batches
// shared among the workers; reached is told the blocks each batch reached
// (on this goroutine; it must not keep the slice).
func (m *marker) scanSegments(segs []taggedSpan, reached func(work []int32)) error {
	plans := m.planBatches(segs)
	i := 0
	err := m.runPool(func() *batchPlan {
		if i == len(plans) {
			return nil
		}
		i++
		return &plans[i-1]
	}, func(_ *batchPlan, work []int32) { reached(work) })
	m.collect()
	return err
}

// batchJob is a batch handed to a worker, with an empty list for the
// blocks it reaches.
type batchJob struct {
	plan *batchPlan
	work []int32
}

// workerDone is what a worker reports after a batch.
type workerDone struct {
	w     *scanWorker
	plan  *batchPlan
	work  []int32 // the blocks the batch reached, to be scanned later
	err   error
	panic any
}

// runPool runs batches on the workers until next has none left (next and
// done run on the calling goroutine only; done is told each finished
// batch and the blocks it reached, and must not keep the slice). With one
// core the batches run inline. A worker's panic is raised again here,
// where Check's recover sees it.
func (m *marker) runPool(nextBatch func() *batchPlan, done func(p *batchPlan, work []int32)) error {
	// A cancelled check ends between batches: no batch is cut after it.
	canceled := false
	next := func() *batchPlan {
		if canceled = canceled || m.canceled(); canceled {
			return nil
		}
		return nextBatch()
	}
	if err := m.runBatches(next, done); err != nil {
		return err
	}
	if canceled {
		return ErrCanceled
	}
	return nil
}

// canceled tells whether Options.Cancel was closed.
func (m *marker) canceled() bool {
	select {
	case <-m.cancel:
		return true
	default:
		return false
	}
}

// runBatches runs the batches next gives, inline or on workers.
func (m *marker) runBatches(next func() *batchPlan, done func(p *batchPlan, work []int32)) error {
	n := min(runtime.GOMAXPROCS(0), maxWorkers)
	// Batches run inline while they come one at a time (a list is
	// flooded one block after the other): starting workers for each
	// would cost more than the batch.
	first := next()
	for first != nil {
		var second *batchPlan
		if n > 1 {
			second = next()
		}
		if second != nil {
			return m.runParallel(n, first, second, next, done)
		}
		w := m.workers[0]
		if err := w.do(first); err != nil {
			return err
		}
		done(first, w.work)
		w.work = w.work[:0]
		first = next()
	}
	return nil
}

// batchesQueued is how many batches a worker holds at most: the one it
// runs and the next, so that it never waits for the dispatcher (this
// goroutine, woken from another thread, which also cuts the next batches
// and files the blocks reached: measured, a worker with one batch at a
// time waited a fifth of the time).
const batchesQueued = 2

// runParallel runs batches on n workers, starting with first and second.
func (m *marker) runParallel(n int, first, second *batchPlan, next func() *batchPlan, done func(*batchPlan, []int32)) error {
	queued := []*batchPlan{first, second}
	take := func() *batchPlan {
		if len(queued) > 0 {
			p := queued[0]
			queued = queued[1:]
			return p
		}
		return next()
	}
	for len(m.workers) < n {
		m.workers = append(m.workers, m.newWorker(m.rd.fork()))
	}
	results := make(chan workerDone, n*batchesQueued)
	inputs := make([]chan batchJob, n)
	for i := range inputs {
		inputs[i] = make(chan batchJob, batchesQueued)
		go m.workerLoop(m.workers[i], inputs[i], results)
	}
	index := map[*scanWorker]int{}
	for i, w := range m.workers[:n] {
		index[w] = i
	}
	load := make([]int, n) // batches handed to each worker and not reported
	var lists [][]int32    // work lists done has finished with
	var firstErr error
	var panicked any
	inflight := 0
	for {
		for firstErr == nil && panicked == nil {
			i := leastLoaded(load)
			if load[i] == batchesQueued {
				break
			}
			p := take()
			if p == nil {
				break
			}
			var work []int32
			if k := len(lists); k > 0 {
				work, lists = lists[k-1], lists[:k-1]
			}
			inputs[i] <- batchJob{p, work}
			load[i]++
			inflight++
		}
		if inflight == 0 {
			break
		}
		r := <-results
		inflight--
		load[index[r.w]]--
		switch {
		case r.panic != nil:
			panicked = r.panic
		case r.err != nil:
			if firstErr == nil {
				firstErr = r.err
			}
		default:
			done(r.plan, r.work)
		}
		lists = append(lists, r.work[:0])
	}
	for _, in := range inputs {
		close(in)
	}
	if panicked != nil {
		panic(panicked)
	}
	return firstErr
}

// leastLoaded returns the worker with the fewest batches.
func leastLoaded(load []int) int {
	best := 0
	for i, l := range load {
		if l < load[best] {
			best = i
		}
	}
	return best
}

// workerLoop runs the batches sent to one worker.
func (m *marker) workerLoop(w *scanWorker, in <-chan batchJob, out chan<- workerDone) {
	for job := range in {
		out <- w.run(job)
	}
}

// run does one batch, turning a panic into a report: a panic in a
// worker goroutine would end the process. The blocks the batch reaches
// go to the job's list, which the report hands back.
func (w *scanWorker) run(job batchJob) (r workerDone) {
	r.w, r.plan = w, job.plan
	w.work = job.work[:0]
	defer func() {
		if v := recover(); v != nil {
			r.panic = fmt.Sprintf("%v\n%s", v, debug.Stack())
		}
		r.work, w.work = w.work, nil
	}()
	r.err = w.do(job.plan)
	return r
}

// collect merges what the workers found.
func (m *marker) collect() {
	for i, w := range m.workers {
		m.work = append(m.work, w.work...)
		w.work = w.work[:0]
		m.edges.take(&w.edges)
		m.rootBytes += w.rootBytes
		m.blockBytes += w.blockBytes
		w.rootBytes, w.blockBytes = 0, 0
		if i > 0 {
			m.rd.join(w.rd)
			w.rd.readBytes, w.rd.unreadableBytes = 0, 0
		}
	}
}

// do reads one batch and scans each segment's bytes, then the blocks
// reached meanwhile that lie in what was read.
func (w *scanWorker) do(p *batchPlan) error {
	buf, pieces, err := w.readBatch(p)
	if err != nil {
		return err
	}
	w.cur, w.curBuf = pieces, buf
	defer func() { w.cur, w.curBuf = nil, nil }()
	w.scanPieces(p.segs, buf, pieces)
	w.scanLocal()
	if p.window {
		w.countUncovered(p.segs, pieces)
	}
	return nil
}

// readBatch reads a batch's ranges (small isolated ones through the
// read-ahead windows).
func (w *scanWorker) readBatch(p *batchPlan) ([]byte, []piece, error) {
	if len(p.reads) == 1 && p.reads[0].size() <= smallRead {
		if buf, pieces, ok := w.readAhead(p.reads[0].span); ok {
			return buf, pieces, nil
		}
	}
	// A window is read whole, gaps and unreached blocks included: a page
	// of it that cannot be read is counted only where a segment needed it
	// (countUncovered).
	unreadable := w.rd.unreadableBytes
	need := 0
	for _, r := range p.reads {
		need += int(r.size())
	}
	w.growBuffer(need)
	var err error
	w.pieces, err = w.rd.read(w.buf, p.reads, w.pieces[:0])
	if p.window {
		w.rd.unreadableBytes = unreadable
	}
	return w.buf, w.pieces, err
}

// countUncovered counts the bytes of segs that no piece holds as
// unreadable.
func (w *scanWorker) countUncovered(segs []taggedSpan, pieces []piece) {
	for _, s := range segs {
		left := s.size()
		for _, pc := range pieces {
			lo, hi := max(s.start, pc.start), min(s.end, pc.end)
			if lo < hi {
				left -= hi - lo
			}
		}
		w.rd.unreadableBytes += left
	}
}

// scanLocal scans the blocks reached while scanning the current batch
// whose bytes it holds — and those they reach in turn — without reading
// them again. A list laid out in memory order, or a cluster of objects
// pointing at their neighbours, is flooded in one batch.
func (w *scanWorker) scanLocal() {
	for len(w.local) > 0 {
		slices.Sort(w.local)
		w.localSeg = w.localSeg[:0]
		for _, k := range w.local {
			w.localSeg = w.m.appendBlock(w.localSeg, k)
		}
		w.local = w.local[:0]
		w.scanPieces(w.localSeg, w.curBuf, w.cur)
	}
}

// inCurrent tells whether block k, which word v points into, has its
// scanned bytes all in one piece of the current batch.
func (w *scanWorker) inCurrent(k int32, v uint64) bool {
	// Most pointers lead out of the batch: v tells without reading k's
	// record.
	if len(w.cur) == 0 || v < w.cur[0].start || v >= w.cur[len(w.cur)-1].end {
		return false
	}
	x := w.m.ix
	start, end := x.starts[k], x.scanEnd[k]
	if end-start >= sparseMin {
		return false // large blocks keep only their populated pages: queue them
	}
	i, _ := slices.BinarySearchFunc(w.cur, start, func(p piece, a uint64) int {
		switch {
		case p.end <= a:
			return -1
		case p.start > a:
			return 1
		}
		return 0
	})
	return i < len(w.cur) && w.cur[i].start <= start && end <= w.cur[i].end
}

// scanPieces scans each segment's bytes among the pieces read for it.
func (w *scanWorker) scanPieces(segs []taggedSpan, buf []byte, pieces []piece) {
	// Pieces and segments are both sorted: walk them together.
	q0 := 0
	for _, s := range segs {
		for q0 < len(pieces) && pieces[q0].end <= s.start {
			q0++
		}
		for q := q0; q < len(pieces) && pieces[q].start < s.end; q++ {
			pc := pieces[q]
			lo, hi := max(s.start, pc.start), min(s.end, pc.end)
			if lo >= hi {
				continue
			}
			b := buf[pc.off+int(lo-pc.start) : pc.off+int(hi-pc.start)]
			if s.tag < 0 {
				w.rootBytes += uint64(len(b))
			} else {
				w.blockBytes += uint64(len(b))
			}
			if w.m.unaligned {
				w.scanUnalignedBytes(b, s.tag)
			} else {
				w.addWords(wordsOf(b), s.tag)
			}
		}
	}
	w.resolve()
}

// Read-ahead for small isolated reads. Flooding a linked list reads one
// node at a time; every read costs a system call. A small read instead
// fetches a window around it, kept in a few slots: the next nodes of a
// list allocated in either order are then served from memory. The target
// is stopped, so what was read stays true.
const (
	smallRead    = 4 << 10
	readAheadWin = 64 << 10
	readAheadN   = 4
)

// aheadSlot is one cached window.
type aheadSlot struct {
	buf    []byte
	pieces []piece
	used   uint64 // for LRU
}

// readAhead serves s from a cached window, reading one if needed. ok is
// false when the window could not cover s (then s is read directly).
func (w *scanWorker) readAhead(s span) (buf []byte, pieces []piece, ok bool) {
	w.aheadClock++
	for i := range w.ahead {
		sl := &w.ahead[i]
		if covered(sl.pieces, s) {
			sl.used = w.aheadClock
			return sl.buf, sl.pieces, true
		}
	}
	if len(w.ahead) < readAheadN {
		w.ahead = append(w.ahead, aheadSlot{buf: alignedBuffer(readAheadWin)})
	}
	victim := &w.ahead[0]
	for i := range w.ahead {
		if w.ahead[i].used < victim.used {
			victim = &w.ahead[i]
		}
	}
	start := s.start &^ (pageSize - 1)
	if start >= readAheadWin/2 {
		start -= readAheadWin / 2
	}
	win := span{start, start + readAheadWin}
	if win.end < s.end {
		win = span{s.start, s.start + readAheadWin}
	}
	// Never read beyond the mapping that holds s: a neighbour could be
	// memory whose reading blocks (userfaultfd) or has effects.
	if maps := w.m.maps; maps != nil {
		i := mappingAt(maps, s.start)
		if i < 0 || maps[i].end < s.end {
			return nil, nil, false
		}
		win = span{max(win.start, maps[i].start), min(win.end, maps[i].end)}
	}
	// The window is a guess: pages of it that cannot be read are not
	// memory the scan missed.
	unreadable := w.rd.unreadableBytes
	var err error
	victim.pieces, err = w.rd.read(victim.buf, []taggedSpan{{win, 0}}, victim.pieces[:0])
	w.rd.unreadableBytes = unreadable
	victim.used = w.aheadClock
	if err != nil || !covered(victim.pieces, s) {
		victim.pieces = victim.pieces[:0]
		return nil, nil, false
	}
	return victim.buf, victim.pieces, true
}

// covered tells whether one piece holds all of s.
func covered(pieces []piece, s span) bool {
	for _, p := range pieces {
		if p.start <= s.start && s.end <= p.end {
			return true
		}
	}
	return false
}

// tagRun: the candidates from index from on come from segment tag.
type tagRun struct {
	from int
	tag  int32
}

// addWords keeps the words of one segment that fall in the blocks'
// address range (one compare each) as candidates, resolving the
// candidates first when the arrays are full.
func (w *scanWorker) addWords(ws []uint64, tag int32) {
	x := w.m.ix
	lo, span := x.lo, x.span
	for len(ws) > 0 {
		if w.n+len(ws) > candidatesMax {
			w.resolve()
		}
		switch r := len(w.tagRuns); {
		case r > 0 && w.tagRuns[r-1].tag == tag:
		case r > 0 && w.tagRuns[r-1].from == w.n:
			// The last segment gave no candidate: its run is reused, so
			// that the runs never outnumber the candidates (a million
			// blocks without a pointer in them would each add one).
			w.tagRuns[r-1].tag = tag
		default:
			w.tagRuns = append(w.tagRuns, tagRun{w.n, tag})
		}
		part := ws[:min(len(ws), candidatesMax-w.n)]
		n := w.n
		cw := w.candW
		if w.m.jemalloc {
			for i, v := range part {
				if v-lo < span {
					cw[n] = v
					w.candPrev[n], w.next[n] = neighbours(part, i)
					n++
				}
			}
		} else {
			// Every word is stored, and kept by counting it: no branch
			// that depends on the data.
			for _, v := range part {
				cw[n] = v
				n += int(ltU64(v-lo, span))
			}
		}
		w.n = n
		ws = ws[len(part):]
	}
}

// ltU64 is 1 if a < b, else 0, without a branch.
func ltU64(a, b uint64) uint64 {
	_, borrow := bits.Sub64(a, b, 0)
	return borrow
}

// neighbours returns the words around ws[i], 0 where there is none.
func neighbours(ws []uint64, i int) (prev, next uint64) {
	if i > 0 {
		prev = ws[i-1]
	}
	if i+1 < len(ws) {
		next = ws[i+1]
	}
	return prev, next
}

// resolve finds the blocks of all candidates at once (see resolveBatch)
// and marks them, or records edges.
func (w *scanWorker) resolve() {
	n := w.n
	if n == 0 {
		return
	}
	w.n = 0
	m := w.m
	x := m.ix
	ck := w.candK[:n]
	x.resolveBatch(w.candW[:n], ck)
	runs := w.tagRuns
	w.tagRuns = w.tagRuns[:0]
	r := 0 // runs[r] holds candidate j
	for j, k := range ck {
		// resolveBatch left out the blocks already reached.
		if k < 0 {
			continue
		}
		for r+1 < len(runs) && runs[r+1].from <= j {
			r++
		}
		tag := runs[r].tag
		if m.leakPhase && k == tag {
			continue
		}
		if m.jemalloc && jemallocMetadata(x, w.candPrev[j], w.candW[j], w.next[j], k) {
			continue
		}
		w.hit(k, tag, w.candW[j])
	}
}

// hit records that word v, from tag, points into block k, which is not
// reached.
func (w *scanWorker) hit(k, tag int32, v uint64) {
	if w.m.leakPhase {
		w.edges.add(Edge{From: tag, To: k})
		return
	}
	if !w.m.ix.markReached(int(k)) {
		return
	}
	switch {
	case w.inCurrent(k, v):
		w.local = append(w.local, k)
	case len(w.work) >= workListMax && w.m.spill != nil:
		w.m.spillAdd(k)
	default:
		w.work = appendDoubling(w.work, k)
	}
}

// workListMax bounds a batch's list of the blocks it reached; the flood
// takes the others from its spill bitmap. A 4 MiB batch of pointers (a
// large array) reaches up to 512 Ki blocks: a list of 2 MiB, grown by
// doubling, for each of the ~5 batches cut or in flight, which made the
// flood of a million reachable blocks cost ~10 MiB.
const workListMax = 32 << 10

// spillAdd records that block k, which this worker marked reached, waits
// to be scanned (from any worker).
func (m *marker) spillAdd(k int32) {
	atomic.OrUint64(&m.spill[k>>6], 1<<(k&63))
	if !m.spilled.Load() {
		m.spilled.Store(true)
	}
}

// appendDoubling is append for a list that can take one entry per word
// of a 4 MiB batch: append grows a large slice by a quarter at a time,
// leaving four times its final size behind for the collector; doubling
// leaves about its size.
func appendDoubling(s []int32, v int32) []int32 {
	if len(s) == cap(s) && len(s) >= 1<<10 {
		s = slices.Grow(s, len(s))
	}
	return append(s, v)
}

// scanUnalignedBytes tests a word at every byte offset (use_unaligned).
// Each word is handed over with its neighbours 8 bytes before and after,
// which the jemalloc metadata test looks at.
func (w *scanWorker) scanUnalignedBytes(b []byte, tag int32) {
	for i := 0; i+8 <= len(b); i++ {
		var prev, next uint64
		if i >= 8 {
			prev = binary.LittleEndian.Uint64(b[i-8:])
		}
		if i+16 <= len(b) {
			next = binary.LittleEndian.Uint64(b[i+8:])
		}
		w.visitOne(prev, binary.LittleEndian.Uint64(b[i:]), next, tag)
	}
}

// visitOne handles one word outside the batched path.
func (w *scanWorker) visitOne(prev, v, next uint64, tag int32) {
	m := w.m
	k := m.ix.find(v)
	if k < 0 || (m.leakPhase && int32(k) == tag) || m.isReached(k) {
		return
	}
	if m.jemalloc && jemallocMetadata(m.ix, prev, v, next, int32(k)) {
		return
	}
	w.hit(int32(k), tag, v)
}

// sortIndices sorts block indices (all >= 0) in place; scratch is reused
// and returned. Large lists get a radix sort: a round of the flood can
// hold millions of blocks.
func sortIndices(ks, scratch []int32) []int32 {
	if len(ks) < 1<<12 {
		slices.Sort(ks)
		return scratch
	}
	var maxK int32
	for _, k := range ks {
		maxK = max(maxK, k)
	}
	if cap(scratch) < len(ks) {
		scratch = make([]int32, len(ks))
	}
	src, dst := ks, scratch[:len(ks)]
	for shift := uint(0); shift < 32 && maxK>>shift != 0; shift += 11 {
		var pos [1 << 11]int
		for _, k := range src {
			pos[(k>>shift)&(1<<11-1)]++
		}
		sum := 0
		for d := range pos {
			pos[d], sum = sum, sum+pos[d]
		}
		for _, k := range src {
			d := (k >> shift) & (1<<11 - 1)
			dst[pos[d]] = k
			pos[d]++
		}
		src, dst = dst, src
	}
	if &src[0] != &ks[0] {
		copy(ks, src)
	}
	return scratch
}

// edgeList collects edges in chunks that are never copied: one block can
// point to a million others, and a slice grown by append leaves its
// earlier arrays behind, together several times its final size.
type edgeList struct {
	chunks [][]Edge
	n      int
}

// Chunks grow from edgeChunkMin to edgeChunkMax edges: a small check
// takes little.
const (
	edgeChunkMin = 64
	edgeChunkMax = 8 << 10
)

func (l *edgeList) add(e Edge) {
	k := len(l.chunks)
	if k == 0 || len(l.chunks[k-1]) == cap(l.chunks[k-1]) {
		l.chunks = append(l.chunks, make([]Edge, 0, min(max(l.n, edgeChunkMin), edgeChunkMax)))
		k++
	}
	l.chunks[k-1] = append(l.chunks[k-1], e)
	l.n++
}

// take moves from's edges to l.
func (l *edgeList) take(from *edgeList) {
	l.chunks = append(l.chunks, from.chunks...)
	l.n += from.n
	*from = edgeList{}
}

// slice returns the edges in one slice, and empties l.
func (l *edgeList) slice() []Edge {
	out := make([]Edge, 0, l.n)
	for _, c := range l.chunks {
		out = append(out, c...)
	}
	*l = edgeList{}
	return out
}

// dedupEdges sorts edges and drops duplicates.
func dedupEdges(es []Edge) []Edge {
	slices.SortFunc(es, func(a, b Edge) int {
		if a.From != b.From {
			return int(a.From - b.From)
		}
		return int(a.To - b.To)
	})
	return slices.Compact(es)
}
