package scanner

import "sync/atomic"

// The granule table: the scan's hot path.
//
// Each cluster's address range is cut into granules (a power of two of
// bytes, at most about two granules per block). One 16-byte entry per
// granule describes the first two blocks that overlap it — by their
// offsets inside the granule — so that a candidate word is resolved with
// one load from the table (one cache line) plus one from the reached
// bitmap (cache-resident), without reading the block's record. A granule
// that more than two blocks overlap is marked "crowded": its words are
// resolved by a search over the block records, as is every granule of a
// cluster whose granules are too large for 16-bit offsets (blocks more
// than ~8 KiB apart on average: memory with few pointers per byte).

// granule describes the blocks first and first+1 inside one granule:
// block first accepts the offsets [start0, end0) except trap0, block
// first+1 accepts [start1, end1) except trap1. Offsets are clipped to the
// granule; an empty range (start == end) is no block.
type granule struct {
	first        int32  // the first block that ends after the granule's start
	start0, end0 uint16 // start0 also carries granuleCrowded
	trap0        uint16 // noTrap if block first's trap is not in the granule
	start1, end1 uint16
	trap1        uint16
}

const (
	// maxGranShift bounds the granule size so that offsets, the granule
	// size included, fit in 15 bits.
	maxGranShift = 14
	// granuleCrowded (in start0): a third block starts in the granule, or
	// the granule is too large to describe; words in neither of the two
	// ranges must be searched.
	granuleCrowded = 1 << 15
	// noTrap is an offset no word has (offsets are below 1<<maxGranShift).
	noTrap = 0xffff
)

// emptyGranule matches nothing; first is the block to search from.
func emptyGranule(first int32) granule {
	return granule{first: first, trap0: noTrap, trap1: noTrap}
}

// fillGranules builds every cluster's entries and the empty last entry
// that words outside the clusters resolve to. The target is stopped
// meanwhile: the table is cut into parts filled in parallel.
func (x *blockIndex) fillGranules() {
	const part = 1 << 16 // granules per part at most
	type job struct {
		c        cluster
		from, to int32
	}
	var jobs []job
	for _, c := range x.clusters {
		for from := int32(0); from < c.count; from += part {
			jobs = append(jobs, job{c, from, min(c.count, from+part)})
		}
	}
	forEachPart(len(jobs), func(i int) {
		x.fillClusterPart(jobs[i].c, jobs[i].from, jobs[i].to)
	})
	x.granules[len(x.granules)-1] = emptyGranule(int32(x.n()))
}

// fillClusterPart builds the entries of granules [from, to) of cluster c,
// walking granules and blocks together.
func (x *blockIndex) fillClusterPart(c cluster, from, to int32) {
	n := x.n()
	size := uint64(1) << c.shift
	k := x.firstEndingAfter(c.start + uint64(from)<<c.shift)
	table := x.granules[c.base+from : c.base+to]
	for g := range table {
		gStart := c.start + uint64(from+int32(g))<<c.shift
		for k < n && x.ends[k] <= gStart {
			k++
		}
		if c.shift > maxGranShift {
			e := emptyGranule(int32(k))
			e.start0 = granuleCrowded
			table[g] = e
			continue
		}
		table[g] = x.describeGranule(k, gStart, size)
	}
}

// firstEndingAfter returns the first block whose end is above a (ends are
// sorted: see settleDuplicates).
func (x *blockIndex) firstEndingAfter(a uint64) int {
	lo, hi := 0, x.n()
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x.ends[m] <= a {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// describeGranule makes the entry of the granule [gStart, gStart+size)
// whose first block ending after gStart is k.
func (x *blockIndex) describeGranule(k int, gStart, size uint64) granule {
	n := x.n()
	e := emptyGranule(int32(k))
	if k < n {
		e.start0, e.end0, e.trap0 = x.blockInGranule(k, gStart, size)
	}
	if k+1 < n {
		e.start1, e.end1, e.trap1 = x.blockInGranule(k+1, gStart, size)
	}
	if k+2 < n && x.starts[k+2] < gStart+size {
		e.start0 |= granuleCrowded
	}
	return e
}

// blockInGranule returns block k's accepted range and trap as offsets in
// the granule [gStart, gStart+size), clipped to it.
func (x *blockIndex) blockInGranule(k int, gStart, size uint64) (start, end, trap uint16) {
	if x.flags[k]&flagDuplicate != 0 {
		return 0, 0, noTrap // matches nothing: its original comes first
	}
	b := x.boundsOf(k)
	clip := func(a uint64) uint16 {
		switch {
		case a <= gStart:
			return 0
		case a-gStart >= size:
			return uint16(size)
		}
		return uint16(a - gStart)
	}
	start, end = clip(b.start), clip(b.end)
	trap = noTrap
	if b.trap != 0 && b.trap >= max(b.start, gStart) && b.trap < b.end && b.trap-gStart < size {
		trap = uint16(b.trap - gStart)
	}
	return start, end, trap
}

// resolve returns the block the word at offset off in the granule points
// into, -1 if none, or -first-2 when the granule is crowded and the word
// must be searched from block first (see resolveSlow).
func (e *granule) resolve(off uint32) int32 {
	in0, in1 := e.matches(off)
	switch {
	case in0 != 0:
		return e.first
	case in1 != 0:
		return e.first + 1
	case e.start0&granuleCrowded != 0:
		return -e.first - 2
	}
	return -1
}

// matches tells (as 0 or 1) whether off is in the first block's range
// and whether it is in the second's.
func (e *granule) matches(off uint32) (in0, in1 uint32) {
	in0 = inRange(off, uint32(e.start0&^granuleCrowded), uint32(e.end0), uint32(e.trap0))
	in1 = inRange(off, uint32(e.start1), uint32(e.end1), uint32(e.trap1))
	return in0, in1
}

// inRange is 1 if start <= off < end and off != trap, else 0, computed
// without branches (all values are below 1<<16).
func inRange(off, start, end, trap uint32) uint32 {
	return ltU32(off-start, end-start) & neU32(off, trap)
}

// resolveChunk is how many words resolveBatch handles per pass: its
// scratch arrays stay in the L1 cache.
const resolveChunk = 512

// resolveBatch resolves candidate words (all inside [lo, lo+span)) to
// sorted block indices, -1 where none or where the block is reached
// already.
//
// The table entries are mostly cache misses. They are loaded in a pass
// that does nothing else — a loop of a few instructions per word, so that
// the processor has many words' loads in flight at once — into a small
// array that the next pass, which does the arithmetic, finds in L1. Done
// in one loop, the arithmetic would fill the processor's window and leave
// only a few misses overlapping (measured: ~25 ns a word instead of ~7).
//
// Most pointers of a heap point to blocks reached already once the flood
// is under way, and their answer is -1 whatever the entry says: words
// whose granule is done (see markDoneGranules) skip the entry's load.
func (x *blockIndex) resolveBatch(ws []uint64, out []int32) {
	out = out[:len(ws)]
	var gi [resolveChunk]int32
	var off [resolveChunk]uint32
	var pos [resolveChunk]int32
	var ents [resolveChunk]granule
	var res [resolveChunk]int32
	for len(ws) > 0 {
		m := min(len(ws), resolveChunk)
		x.locateGranules(ws[:m], gi[:m], off[:m])
		open := x.skipDoneGranules(gi[:m], off[:m], pos[:m])
		x.loadGranules(gi[:open], ents[:open])
		crowded := x.resolveInGranules(ents[:open], off[:open], res[:open])
		x.markDoneGranules(gi[:open], ents[:open])
		for j := range out[:m] {
			out[j] = -1
		}
		for i, j := range pos[:open] {
			out[j] = res[i]
		}
		if crowded > 0 {
			x.resolveCrowded(ws[:m], out[:m])
		}
		ws, out = ws[m:], out[m:]
	}
}

// skipDoneGranules drops the words whose granule is done, keeping the
// others' granules and offsets at the front of gi and off and their
// positions in pos; it returns how many are kept. No branch depends on
// the data.
func (x *blockIndex) skipDoneGranules(gi []int32, off []uint32, pos []int32) (open int) {
	done := x.doneGranules
	for j, g := range gi {
		d := int(atomic.LoadUint64(&done[g>>6]) >> (g & 63) & 1)
		gi[open], off[open], pos[open] = g, off[j], int32(j)
		open += 1 - d
	}
	return open
}

// markDoneGranules marks done every granule among gi whose blocks are all
// reached: no word in it can find a block left to reach. Reached bits
// are never cleared during a check, so a done granule stays done; a
// crowded granule (more blocks than its entry names) never is.
func (x *blockIndex) markDoneGranules(gi []int32, ents []granule) {
	reached, done := x.reached, x.doneGranules
	for j := range ents {
		e := &ents[j]
		empty0 := neU32(uint32(e.start0&^granuleCrowded), uint32(e.end0)) ^ 1
		empty1 := neU32(uint32(e.start1), uint32(e.end1)) ^ 1
		crowded := uint32(e.start0 >> 15)
		// Block first+1 is read only when its range is not empty: the
		// block then exists (the bitmap ends after the sentinel).
		k0, k1 := e.first, e.first+int32(empty1^1)
		r0 := uint32(atomic.LoadUint64(&reached[k0>>6]) >> (k0 & 63) & 1)
		r1 := uint32(atomic.LoadUint64(&reached[k1>>6]) >> (k1 & 63) & 1)
		if (r0|empty0)&(r1|empty1)&^crowded != 0 {
			g := gi[j]
			atomic.OrUint64(&done[g>>6], 1<<(g&63))
		}
	}
}

// locateGranules finds each word's granule entry and its offset in it.
func (x *blockIndex) locateGranules(ws []uint64, gi []int32, off []uint32) {
	if len(x.clusters) != 1 {
		for j, w := range ws {
			gi[j], off[j] = x.granuleOf(w)
		}
		return
	}
	c := &x.clusters[0]
	empty := int32(len(x.granules) - 1)
	mask := uint64(1)<<c.shift - 1
	for j, w := range ws {
		d := w - c.start
		g := empty
		if d < c.span {
			g = c.base + int32(d>>c.shift)
		}
		gi[j], off[j] = g, uint32(d&mask)
	}
}

// loadGranules copies the entries gi name into ents.
func (x *blockIndex) loadGranules(gi []int32, ents []granule) {
	table := x.granules
	for j, g := range gi {
		ents[j] = table[g]
	}
}

// resolveInGranules resolves each word from its granule entry and filters
// out the blocks reached already: out[j] is the block, -1, or -first-2
// for a word to be searched (crowded granule). It returns how many words
// need the search. No branch depends on the data.
func (x *blockIndex) resolveInGranules(ents []granule, off []uint32, out []int32) (crowded int) {
	reached := x.reached
	for j := range ents {
		e := &ents[j]
		o := off[j]
		// e.matches(o), inlined by hand: this loop is the hot path.
		in0 := inRange(o, uint32(e.start0&^granuleCrowded), uint32(e.end0), uint32(e.trap0))
		in1 := inRange(o, uint32(e.start1), uint32(e.end1), uint32(e.trap1))
		k := e.first + int32(in1&^in0)
		found := in0 | in1
		seen := uint32(atomic.LoadUint64(&reached[k>>6]) >> (k & 63) & 1)
		search := (1 - found) & uint32(e.start0>>15)
		fresh := found &^ seen
		// fresh: k; search: -first-2; otherwise (no block, or reached): -1.
		out[j] = (k+1)*int32(fresh) + (-e.first-1)*int32(search) - 1
		crowded += int(search)
	}
	return crowded
}

// resolveCrowded searches the words resolveInGranules could not resolve.
func (x *blockIndex) resolveCrowded(ws []uint64, out []int32) {
	for j, w := range ws {
		if r := out[j]; r < -1 {
			k := x.resolveSlow(w, int(-r-2))
			if k >= 0 && x.isReached(int(k)) {
				k = -1
			}
			out[j] = k
		}
	}
}

// ltU32 is 1 if a < b, else 0, without a branch.
func ltU32(a, b uint32) uint32 {
	return uint32((uint64(a) - uint64(b)) >> 63)
}

// neU32 is 1 if a != b, else 0, without a branch.
func neU32(a, b uint32) uint32 {
	return uint32(-uint64(a^b) >> 63)
}
