package scanner

import (
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
