package scanner

// A worker's scan of the words it read: candidates in the blocks' address
// range, resolved to blocks in bulk.

import (
	"encoding/binary"
	"math/bits"
	"slices"
)

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
