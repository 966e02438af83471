package scanner

import (
	"math/bits"
	"slices"
	"sync/atomic"
	"unsafe"
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

	// The other bits hold where the block's trap is: that many bytes
	// before its scanned end (0: no trap). A trap is the last usable word
	// when the block is set, 8 bytes before the end; cutting the end
	// leaves it only if it is still inside, so it is 1 to 8 bytes before
	// the end at most, and needs no word of its own.
	trapShift       = 1
	trapMask  uint8 = 0xf << trapShift
)

// bounds is a block's accepted range: a pointer w points into the block
// if start <= w < end and w != trap. The granule table (granules.go)
// answers most words without reading it; the index keeps the fields in
// separate arrays (boundsOf).
type bounds struct {
	start, end uint64
	// trap is an address inside the block that is not taken as a pointer
	// to it (0: none): for a glibc heap chunk, its last usable word, which
	// is the next chunk's header, the address malloc's bins and top
	// pointer hold.
	trap uint64
}

// blockIndex holds the tracked blocks sorted by address and answers "which
// block does this word point into" quickly: it is the scan's hot path.
type blockIndex struct {
	starts []uint64 // block start, ascending
	// ends are the ends of the accepted ranges, by sorted position, plus
	// a sentinel that matches nothing; ascending too (settleDuplicates).
	ends []uint64
	// reached has one bit per sorted block, set (atomically) once the scan
	// reaches it: 128 KiB for a million blocks, so it stays in cache.
	reached []uint64
	scanEnd []uint64 // end of the bytes scanned when the block is reached
	orig    []int32  // index of the block in the caller's slice
	flags   []uint8  // flagDuplicate, and the trap (see trapShift)

	// Every block lies in [lo, lo+span): one compare rejects most words.
	lo, span uint64

	clusters      []cluster
	clusterStarts []uint64
	// granules holds every cluster's granule table, one after the other,
	// then one empty entry that resolves nothing (see granules.go).
	granules []granule
	// doneGranules has one bit per granule, set once every block the
	// granule's entry names is reached (see markDoneGranules).
	doneGranules []uint64

	// arena holds the big arrays (the per-block ones, the granule
	// tables); release returns them.
	arena *hugeArena
}

// release frees the index's big arrays; the index must not be used after.
func (x *blockIndex) release() { x.arena.release() }

// cluster is a run of blocks with small gaps between them. Its address
// range is cut into granules of 1<<shift bytes, described by
// granules[base : base+count].
type cluster struct {
	start, span uint64
	shift       uint
	base, count int32
}

const (
	clusterGap   = 1 << 20 // a wider gap between blocks starts a new cluster
	minGranShift = 4
)

// newSortedIndex sorts n blocks by address (addr(i) is block i's) and
// returns an index whose sizes are still to be set: call setSizes for
// every sorted position (from any number of goroutines), then finish.
func newSortedIndex(n int, addr func(i int) uint64) *blockIndex {
	// Fresh memory costs a page fault per 4 KiB page (several µs each in
	// a VM): the big arrays come from huge pages, the sort's scratch too.
	arena := &hugeArena{}
	arena.reserve(hugeBytes[uint64](n) + hugeBytes[addrIdx](n+1) + hugeBytes[uint64](n/64+1) +
		hugeBytes[int32](n) + hugeBytes[uint8](n))
	x := &blockIndex{
		arena:   arena,
		starts:  hugeAlloc[uint64](arena, n),
		reached: hugeAlloc[uint64](arena, n/64+1), // +1: the sentinel's bit
		orig:    hugeAlloc[int32](arena, n),
		flags:   hugeAlloc[uint8](arena, n),
	}
	// ends and scanEnd are set only once the blocks are sorted: until
	// then their memory is one of the sort's two buffers, which a million
	// blocks would take 16 MiB more for.
	ends := hugeAlloc[addrIdx](arena, n+1)
	x.ends, x.scanEnd = splitWords(ends, n+1, n)
	scratch := &hugeArena{}
	defer scratch.release()
	sortByAddress(n, addr, x.starts, x.orig, ends[:n], scratch)
	// The sentinel: no word is >= its end.
	x.ends[n] = ^uint64(0)
	return x
}

// splitWords views the memory of recs as two arrays of words, of a and
// b words (a+b at most twice len(recs)).
func splitWords(recs []addrIdx, a, b int) ([]uint64, []uint64) {
	if len(recs) == 0 {
		return make([]uint64, a), make([]uint64, b)
	}
	words := unsafe.Slice((*uint64)(unsafe.Pointer(&recs[0])), 2*len(recs))
	return words[:a:a], words[a : a+b : a+b]
}

// boundsOf returns sorted block k's accepted range and trap.
func (x *blockIndex) boundsOf(k int) bounds {
	return bounds{start: x.starts[k], end: x.ends[k], trap: x.trapOf(k)}
}

// trapOf returns sorted block k's trap (0: none).
func (x *blockIndex) trapOf(k int) uint64 {
	back := uint64(x.flags[k]&trapMask) >> trapShift
	if back == 0 {
		return 0
	}
	return x.scanEnd[k] - back
}

// setBounds stores sorted block k's end, trap and scanned end (b.start
// is starts[k]). The trap must lie 1 to 8 bytes before scanEnd, or be 0.
func (x *blockIndex) setBounds(k int, b bounds, scanEnd uint64) {
	var back uint8
	if b.trap != 0 {
		back = uint8(scanEnd - b.trap)
	}
	x.ends[k], x.scanEnd[k] = b.end, scanEnd
	x.flags[k] = x.flags[k]&^trapMask | back<<trapShift
}

// setSizes sets the block at sorted position k to accept pointers into
// [start, start+accept) and to be scanned over [start, start+usable).
// glibcChunk marks a glibc heap chunk, whose last usable word is a trap.
// Both ranges end where the next block starts (see finish for blocks at
// the same address). It writes only position k's entries, so positions
// can be set in parallel.
func (x *blockIndex) setSizes(k int, accept, usable uint64, glibcChunk bool) {
	start := x.starts[k]
	b := bounds{start: start, end: satAdd(start, accept)}
	scanEnd := satAdd(start, usable)
	if glibcChunk && usable >= glibcSizeSz {
		b.trap = scanEnd - glibcSizeSz
	}
	if k+1 < len(x.starts) && x.starts[k+1] > start {
		b, scanEnd = cutAt(b, scanEnd, x.starts[k+1])
	}
	x.setBounds(k, b, scanEnd)
}

// cutAt ends a block's ranges at next, where the next block starts: the
// ranges must not overlap, whatever the snapshot holds. A trap cut off
// goes too.
func cutAt(b bounds, scanEnd, next uint64) (bounds, uint64) {
	b.end = min(b.end, next)
	scanEnd = min(scanEnd, next)
	if b.trap >= scanEnd {
		b.trap = 0
	}
	return b, scanEnd
}

// finish settles the blocks at the same address and builds the lookup
// tables.
func (x *blockIndex) finish() {
	x.settleDuplicates()
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

// settleDuplicates makes a block at the same address as the previous one
// a duplicate, which matches nothing and is not scanned, and cuts the
// ranges of the first block at that address (its original, which setSizes
// could not cut) where the next address starts.
func (x *blockIndex) settleDuplicates() {
	n := len(x.starts)
	for k := 1; k < n; k++ {
		if x.starts[k] != x.starts[k-1] {
			continue
		}
		orig := k - 1
		for k < n && x.starts[k] == x.starts[orig] {
			x.flags[k] |= flagDuplicate
			k++
		}
		if k < n {
			b, scanEnd := cutAt(x.boundsOf(orig), x.scanEnd[orig], x.starts[k])
			x.setBounds(orig, b, scanEnd)
		}
		// A duplicate gets its original's end, which keeps ends sorted
		// (the lookups rely on it); lookups stop at the original, which
		// comes first.
		for d := orig + 1; d < k; d++ {
			x.setBounds(d, bounds{start: x.starts[d], end: x.ends[orig]}, x.starts[d])
		}
	}
}

// buildClusters splits the sorted blocks into clusters and builds their
// granule tables.
func (x *blockIndex) buildClusters() {
	n := len(x.starts)
	if n == 0 {
		x.granules = []granule{emptyGranule(int32(n))}
		x.doneGranules = make([]uint64, 1)
		return
	}
	x.lo = x.starts[0]
	hi := x.lo
	begin := 0
	clusterEnd := x.starts[0]
	var total int
	for k := 0; k <= n; k++ {
		if k == n || (k > begin && x.starts[k] > clusterEnd && x.starts[k]-clusterEnd > clusterGap) {
			c := newCluster(x.starts[begin], clusterEnd, k-begin)
			c = x.coarsen(c, begin, k)
			c.base = int32(total)
			total += int(c.count)
			x.clusters = append(x.clusters, c)
			if k == n {
				break
			}
			begin = k
			clusterEnd = x.starts[k]
		}
		clusterEnd = max(clusterEnd, x.ends[k])
		hi = max(hi, x.ends[k])
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
	x.arena.reserve(hugeBytes[granule](total+1) + hugeBytes[uint64]((total+1)/64+1))
	x.granules = hugeAlloc[granule](x.arena, total+1)
	x.doneGranules = hugeAlloc[uint64](x.arena, (total+1)/64+1)
	x.fillGranules()
}

// newCluster sizes the granules of a cluster of count blocks covering
// [start, limit): the smallest power of two that keeps the table at most
// about twice as long as the cluster has blocks.
func newCluster(start, limit uint64, count int) cluster {
	c := cluster{start: start, span: limit - start}
	if c.span == 0 {
		c.span = 1 // only empty blocks: the table still needs one granule
	}
	c.shift = minGranShift
	for (c.span>>c.shift) > 2*uint64(count)+1 && c.shift < 63 {
		c.shift++
	}
	c.count = int32((c.span-1)>>c.shift) + 1
	return c
}

// coarsen doubles the granules of cluster c, which holds blocks [begin,
// end), while almost none of the larger granules would be crowded (more
// than two blocks in one): an entry then answers the same words at half
// the table's size. newCluster's rule (at most about two granules a
// block) leaves 16-byte entries for 32-byte granules in a heap of
// 48-byte chunks: 24 bytes a block, which 64-byte granules, holding two
// blocks at most, halve. Where blocks lie closer than that the larger
// granules are crowded, and c stays as it is: a crowded granule's words
// are searched, and it is never done (markDoneGranules).
func (x *blockIndex) coarsen(c cluster, begin, end int) cluster {
	for c.shift < maxGranShift && c.span>>(c.shift+1) >= uint64(end-begin)/2 {
		if x.crowdedBlocks(begin, end, c.start, c.shift+1) > (end-begin)/coarsenCrowdedMax {
			break
		}
		c.shift++
		c.count = int32((c.span-1)>>c.shift) + 1
	}
	return c
}

// coarsenCrowdedMax: coarsen takes larger granules while at most one
// block in this many starts a crowded one.
const coarsenCrowdedMax = 256

// crowdedBlocks counts the blocks k among [begin, end) for which a
// granule of 1<<shift bytes (the cluster starting at base) holds k's
// accepted end and k+2's start: three blocks in one granule, which is
// then crowded (describeGranule).
func (x *blockIndex) crowdedBlocks(begin, end int, base uint64, shift uint) int {
	crowded := 0
	for k := begin; k+2 < end; k++ {
		if x.ends[k] > x.starts[k] && (x.starts[k+2]-base)>>shift <= (x.ends[k]-1-base)>>shift {
			crowded++
		}
	}
	return crowded
}

// granuleOf returns the index in granules of w's granule and w's offset in
// it; the empty last entry if w is in no cluster.
func (x *blockIndex) granuleOf(w uint64) (gi int32, off uint32) {
	ci := 0
	if len(x.clusters) > 1 {
		ci = x.clusterOf(w)
		if ci < 0 {
			return int32(len(x.granules) - 1), 0
		}
	}
	c := &x.clusters[ci]
	d := w - c.start
	if d >= c.span {
		return int32(len(x.granules) - 1), 0
	}
	return c.base + int32(d>>c.shift), uint32(d & (1<<c.shift - 1))
}

// resolveSlow searches the blocks after k (w's granule holds several).
func (x *blockIndex) resolveSlow(w uint64, k int) int32 {
	n := len(x.starts)
	// The answer lies before the first block of the next granule (or is
	// that block): binary search the first block that ends after w.
	lo, hi := k, n
	for step := 0; lo < hi && step < 4; step++ { // most often it is the next one
		if x.ends[lo] > w {
			hi = lo
			break
		}
		lo++
	}
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x.ends[m] <= w {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo >= n {
		return -1
	}
	if x.starts[lo] > w || w >= x.ends[lo] || w == x.trapOf(lo) {
		return -1
	}
	return int32(lo)
}

// find returns the sorted index of the block word w points into, or -1.
func (x *blockIndex) find(w uint64) int {
	if w-x.lo >= x.span {
		return -1
	}
	gi, off := x.granuleOf(w)
	r := x.granules[gi].resolve(off)
	if r < -1 {
		r = x.resolveSlow(w, int(-r-2))
	}
	return int(r)
}

// isReached tells whether sorted block k was reached.
func (x *blockIndex) isReached(k int) bool {
	return atomic.LoadUint64(&x.reached[k>>6])>>(k&63)&1 != 0
}

// markReached marks block k reached; false if it already was.
func (x *blockIndex) markReached(k int) bool {
	bit := uint64(1) << (k & 63)
	return atomic.OrUint64(&x.reached[k>>6], bit)&bit == 0
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
