package scanner

// The flood: blocks reached wait in a list, or in a sweep of the index when
// many wait, and are read in batches of nearby memory.

import (
	"math/bits"
	"slices"
)

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
