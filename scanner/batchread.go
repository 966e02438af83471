package scanner

// A worker's reads: a batch's memory in one read, and windows read ahead
// for segments too small to be worth a read of their own.

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
