package scanner

import (
	"math/bits"
	"slices"
	"sync/atomic"
)

// Pointer filter bounds, as LeakSanitizer's MaybeUserPointer on x86-64:
// values below 16 KiB are never pointers, and a user-space pointer has
// bits 47–56 and 63 clear (bits 57–62 may carry LAM tags).
const (
	minPointer   = 16 << 10
	kernelMask   = uint64(0x81ff80) << 40
	userSpaceEnd = uint64(1) << 47
)

// maybeUserPointer is LSan's pre-filter of candidate words.
func maybeUserPointer(w uint64) bool {
	return w >= minPointer && w&kernelMask == 0
}

// Per-block flags.
const (
	flagDuplicate uint8 = 1 << iota // same address as the previous block: never matched, takes its class
)

// bounds is what the hot path needs of a block, packed so that one cache
// line holds it: a pointer w points into the block if start <= w < end and
// w != trap.
type bounds struct {
	start, end uint64
	// trap is an address inside the block that is not taken as a pointer
	// to it (0: none): for a glibc heap chunk, its last usable word, which
	// is the next chunk's header, the address malloc's bins and top
	// pointer hold.
	trap uint64
	// reached is set (atomically) once the scan reaches the block. It
	// lives here so that the load that resolves a word also tells whether
	// its block is reached already.
	reached uint32
	_       uint32
}

// blockIndex holds the tracked blocks sorted by address and answers "which
// block does this word point into" quickly: it is the scan's hot path.
type blockIndex struct {
	starts  []uint64 // block start, ascending
	bounds  []bounds // by sorted position, plus a sentinel that matches nothing
	scanEnd []uint64 // end of the bytes scanned when the block is reached
	orig    []int32  // index of the block in the caller's slice
	flags   []uint8

	// Every block lies in [lo, lo+span): one compare rejects most words.
	lo, span uint64

	clusters      []cluster
	clusterStarts []uint64

	// arena holds the big arrays (bounds, granule tables, marks); release
	// returns them.
	arena *hugeArena
}

// release frees the index's big arrays; the index must not be used after.
func (x *blockIndex) release() { x.arena.release() }

// cluster is a run of blocks with small gaps between them, with a table
// that maps each granule of its address range to the first block that
// ends after the granule's start.
type cluster struct {
	start, span uint64
	shift       uint
	first       []int32 // len = granules+1; the last entry is a sentinel
}

const (
	clusterGap   = 1 << 20 // a wider gap between blocks starts a new cluster
	minGranShift = 4
)

// newSortedIndex sorts n blocks by address (addr(i) is block i's) and
// returns an index whose sizes are still to be set: call setSizes for
// every sorted position, then finish.
func newSortedIndex(n int, addr func(i int) uint64) *blockIndex {
	sorted := sortByAddress(n, addr)
	arena := &hugeArena{}
	x := &blockIndex{
		arena:   arena,
		starts:  make([]uint64, n),
		bounds:  hugeAlloc[bounds](arena, n+1),
		scanEnd: make([]uint64, n),
		orig:    make([]int32, n),
		flags:   make([]uint8, n),
	}
	for k, e := range sorted {
		x.starts[k] = e.addr
		x.orig[k] = e.idx
		x.bounds[k].start = e.addr
	}
	// The sentinel: no word is >= its start and < its end.
	x.bounds[n] = bounds{start: ^uint64(0), end: ^uint64(0)}
	return x
}

// addrIdx is a block's address and its index in the caller's slice.
type addrIdx struct {
	addr uint64
	idx  int32
}

// sortByAddress orders the blocks by address, equal addresses by index.
// It is a least-significant-digit radix sort that skips the bytes all
// addresses share (the high ones): a few linear passes, where a
// comparison sort of millions of blocks would stall the frozen target
// several times longer.
func sortByAddress(n int, addr func(i int) uint64) []addrIdx {
	a := make([]addrIdx, n)
	var or, and uint64 = 0, ^uint64(0)
	for i := range a {
		v := addr(i)
		a[i] = addrIdx{v, int32(i)}
		or |= v
		and &= v
	}
	if n < 256 {
		slices.SortStableFunc(a, func(x, y addrIdx) int {
			switch {
			case x.addr < y.addr:
				return -1
			case x.addr > y.addr:
				return 1
			}
			return 0
		})
		return a
	}
	differ := or ^ and // the bits that are not the same in every address
	b := make([]addrIdx, n)
	for shift := uint(0); shift < 64; shift += 8 {
		if (differ>>shift)&0xff == 0 {
			continue
		}
		var pos [256]int
		for _, e := range a {
			pos[(e.addr>>shift)&0xff]++
		}
		sum := 0
		for d := range pos {
			pos[d], sum = sum, sum+pos[d]
		}
		for _, e := range a {
			d := (e.addr >> shift) & 0xff
			b[pos[d]] = e
			pos[d]++
		}
		a, b = b, a
	}
	return a
}

// setSizes sets the block at sorted position k to accept pointers into
// [start, start+accept) and to be scanned over [start, start+usable).
// glibcChunk marks a glibc heap chunk, whose last usable word is a trap.
func (x *blockIndex) setSizes(k int, accept, usable uint64, glibcChunk bool) {
	x.bounds[k].end = satAdd(x.starts[k], accept)
	x.scanEnd[k] = satAdd(x.starts[k], usable)
	if glibcChunk && usable >= glibcSizeSz {
		x.bounds[k].trap = x.scanEnd[k] - glibcSizeSz
	}
}

// finish makes the ranges disjoint and builds the lookup tables.
func (x *blockIndex) finish() {
	x.makeDisjoint()
	x.buildClusters()
}

func (x *blockIndex) n() int { return len(x.starts) }

func satAdd(a, b uint64) uint64 {
	s, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		return ^uint64(0)
	}
	return s
}

// makeDisjoint guarantees that the blocks' ranges do not overlap, whatever
// the snapshot holds: a range is cut where the next block starts, and a
// block at the same address as the previous one is a duplicate that
// matches nothing and is not scanned.
func (x *blockIndex) makeDisjoint() {
	prev := -1 // the last block that is not a duplicate
	for k := range x.starts {
		if prev >= 0 && x.starts[k] == x.starts[prev] {
			x.flags[k] |= flagDuplicate
			x.scanEnd[k] = x.starts[k]
			continue
		}
		if prev >= 0 {
			b := &x.bounds[prev]
			b.end = min(b.end, x.starts[k])
			x.scanEnd[prev] = min(x.scanEnd[prev], x.starts[k])
			if b.trap >= x.scanEnd[prev] {
				b.trap = 0
			}
		}
		prev = k
	}
	// A duplicate gets its original's end, which keeps ends sorted (the
	// lookups rely on it); lookups stop at the original, which comes first.
	for k := 1; k < len(x.starts); k++ {
		if x.flags[k]&flagDuplicate != 0 {
			x.bounds[k].end = x.bounds[k-1].end
			x.bounds[k].trap = 0
		}
	}
}

// buildClusters splits the sorted blocks into clusters and fills each
// cluster's granule table. A table has at most about twice as many
// entries as its cluster has blocks.
func (x *blockIndex) buildClusters() {
	n := len(x.starts)
	if n == 0 {
		return
	}
	x.lo = x.starts[0]
	hi := x.lo
	begin := 0
	clusterEnd := x.starts[0]
	for k := 0; k <= n; k++ {
		if k == n || (k > begin && x.starts[k] > clusterEnd && x.starts[k]-clusterEnd > clusterGap) {
			x.addCluster(begin, k, clusterEnd)
			if k == n {
				break
			}
			begin = k
			clusterEnd = x.starts[k]
		}
		clusterEnd = max(clusterEnd, x.bounds[k].end)
		hi = max(hi, x.bounds[k].end)
	}
	// LSan's pointer filter, folded into the range test: no pointer below
	// 16 KiB or past the 47-bit user address space.
	x.lo = max(x.lo, minPointer)
	hi = min(hi, userSpaceEnd)
	if hi > x.lo {
		x.span = hi - x.lo
	}
	x.clusterStarts = make([]uint64, len(x.clusters))
	for i, c := range x.clusters {
		x.clusterStarts[i] = c.start
	}
}

// addCluster indexes blocks [begin, end) covering [starts[begin], limit).
func (x *blockIndex) addCluster(begin, end int, limit uint64) {
	c := cluster{start: x.starts[begin], span: limit - x.starts[begin]}
	if c.span == 0 {
		c.span = 1 // only empty blocks: the table still needs one granule
	}
	count := uint64(end - begin)
	c.shift = minGranShift
	for (c.span>>c.shift) > 2*count+1 && c.shift < 63 {
		c.shift++
	}
	granules := int((c.span-1)>>c.shift) + 1
	c.first = hugeAlloc[int32](x.arena, granules+1)
	k := begin
	for g := 0; g < granules; g++ {
		gStart := c.start + uint64(g)<<c.shift
		for k < end && x.bounds[k].end <= gStart {
			k++
		}
		c.first[g] = int32(k)
	}
	c.first[granules] = int32(end)
	x.clusters = append(x.clusters, c)
}

// firstCandidate returns the first block that ends after the start of
// w's granule (the sentinel n if none), or -1 if w is in no cluster. The
// block containing w, if any, is that one or one of the next few.
func (x *blockIndex) firstCandidate(w uint64) int32 {
	c := &x.clusters[0]
	if len(x.clusters) > 1 {
		ci := x.clusterOf(w)
		if ci < 0 {
			return -1
		}
		c = &x.clusters[ci]
	}
	off := w - c.start
	if off >= c.span {
		return -1
	}
	return c.first[off>>c.shift]
}

// finish resolves w from its first candidate k: the block containing w is
// the first block from k on that ends after w.
func (x *blockIndex) resolveFrom(w uint64, k int32) int32 {
	if k < 0 {
		return -1
	}
	b := &x.bounds[k]
	if w-b.start < b.end-b.start {
		if w == b.trap {
			return -1
		}
		return k
	}
	return x.resolveSlow(w, int(k))
}

// resolveSlow searches the blocks after k (w's granule holds several).
func (x *blockIndex) resolveSlow(w uint64, k int) int32 {
	n := len(x.starts)
	// The answer lies before the first block of the next granule (or is
	// that block): binary search the first block that ends after w.
	lo, hi := k, n
	for step := 0; lo < hi && step < 4; step++ { // most often it is the next one
		if x.bounds[lo].end > w {
			hi = lo
			break
		}
		lo++
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x.bounds[m].end <= w {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo >= n {
		return -1
	}
	b := &x.bounds[lo]
	if b.start > w || w >= b.end || w == b.trap {
		return -1
	}
	return int32(lo)
}

// find returns the sorted index of the block word w points into, or -1.
func (x *blockIndex) find(w uint64) int {
	if w-x.lo >= x.span {
		return -1
	}
	return int(x.resolveFrom(w, x.firstCandidate(w)))
}

// isReached tells whether sorted block k was reached.
func (x *blockIndex) isReached(k int) bool { return atomic.LoadUint32(&x.bounds[k].reached) != 0 }

// markReached marks block k reached; false if it already was.
func (x *blockIndex) markReached(k int) bool {
	return atomic.CompareAndSwapUint32(&x.bounds[k].reached, 0, 1)
}

// resolveBatch resolves candidate words (all inside [lo, lo+span)) to
// sorted block indices, -1 where none or where the block is reached
// already. The work is split into passes whose iterations do not depend
// on each other, so that the processor overlaps their cache misses: this
// is what makes pointer-dense memory fast.
func (x *blockIndex) resolveBatch(ws []uint64, out []int32) {
	out = out[:len(ws)]
	none := int32(len(x.starts)) // the sentinel: matches nothing
	if len(x.clusters) == 1 {
		c := &x.clusters[0]
		for j, w := range ws {
			g := (w - c.start) >> c.shift
			k := none
			if g < uint64(len(c.first)) {
				k = c.first[g]
			}
			out[j] = k
		}
	} else {
		for j, w := range ws {
			k := x.firstCandidate(w)
			if k < 0 {
				k = none
			}
			out[j] = k
		}
	}
	// Most words point into their first candidate or the block right
	// after it (when a block boundary falls inside the granule): test
	// those without branching on the outcome (the next record is in the
	// same or the next cache line), then resolve the rest one by one.
	bs := x.bounds
	slow := false
	for j, w := range ws {
		k := out[j]
		var past int32
		if w >= bs[k].end && k < none {
			past = 1
		}
		k += past
		b := &bs[k]
		in := w-b.start < b.end-b.start
		notTrap := w != b.trap
		r := -k - 2 // "not resolved yet, start from k"
		if in && notTrap {
			r = k
			if atomic.LoadUint32(&b.reached) != 0 {
				r = -1
			}
		}
		out[j] = r
		slow = slow || r < -1
	}
	if !slow {
		return
	}
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

// clusterOf returns the cluster whose start is the last one <= w.
func (x *blockIndex) clusterOf(w uint64) int {
	lo, hi := 0, len(x.clusterStarts)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x.clusterStarts[m] <= w {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

// findScan returns the sorted index of the block whose scanned bytes
// [start, scanEnd) contain address a, or -1. Not on a hot path.
func (x *blockIndex) findScan(a uint64) int {
	k, _ := slices.BinarySearch(x.starts, a+1)
	k--
	if k >= 0 && a < x.scanEnd[k] {
		return k
	}
	return -1
}
