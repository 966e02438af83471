package scanner

import (
	"math/bits"
	"runtime"
)

// addrIdx is a block's address and its index in the caller's slice.
type addrIdx struct {
	addr uint64
	idx  int32
}

const (
	// msdBits: a split sorts by this many bits at once (2048 buckets).
	msdBits = 11
	// lsdMaxBits: each pass of the in-cache sort takes at most this many
	// bits (a 256-entry count array).
	lsdMaxBits = 8
	// localSortMax: a bucket of at most this many records (64 KiB) stays
	// in the caches while it is sorted by its remaining bits.
	localSortMax = 1 << 12
	// insertionMax: smaller buckets are sorted by insertion.
	insertionMax = 24
	// parallelSplitMin: smaller sets of records are split on one core.
	parallelSplitMin = 1 << 15
	// recordPart: records made per part when they are made in parallel.
	recordPart = 1 << 16
)

// sortByAddress writes the n blocks' addresses (addr(i) is block i's) in
// ascending order to starts and the blocks' indices to orig; equal
// addresses keep their index order. Its scratch space is spare (n
// records; nil: from arena) and n records from arena.
//
// The target is stopped meanwhile, and the sort of a million addresses
// was a third of the index's time: it is a radix sort over only the bits
// that differ, spread over the cores. The records are split by their top
// differing bits into buckets, every core counting and moving its own
// part of them; while one bucket holds most of the records (a heap far
// from a few other blocks), that bucket is split again the same way. The
// buckets are then finished in parallel, each by one core: split further
// while large, then sorted by their remaining bits least significant
// first, which for a bucket of a few thousand records happens in the
// cache instead of in passes over the whole array.
func sortByAddress(n int, addr func(i int) uint64, starts []uint64, orig []int32, spare []addrIdx, arena *hugeArena) {
	if n == 0 {
		return
	}
	if spare == nil {
		arena.reserve(2 * hugeBytes[addrIdx](n))
		spare = hugeAlloc[addrIdx](arena, n)
	}
	s := &addrSorter{
		recs:   hugeAlloc[addrIdx](arena, n),
		spare:  spare[:n],
		starts: starts,
		orig:   orig,
	}
	differ := makeRecords(s.recs, addr)
	s.low = uint(bits.TrailingZeros64(differ)) // 64 when all are equal
	top := uint(64 - bits.LeadingZeros64(differ))
	tasks := s.splitDominant(sortTask{lo: 0, hi: n, top: top})
	forEachPart(len(tasks), func(i int) { s.finish(tasks[i]) })
}

// addrSorter holds a sort's buffers: the records move between recs and
// spare, and each finished bucket is written to starts and orig.
type addrSorter struct {
	recs, spare []addrIdx
	starts      []uint64
	orig        []int32
	low         uint // the lowest bit in which some addresses differ
}

// sortTask is the records [lo, hi), in spare or in recs, which agree on
// every address bit from top up and are in index order where their
// addresses are equal.
type sortTask struct {
	lo, hi  int
	top     uint
	inSpare bool
}

func (t sortTask) size() int { return t.hi - t.lo }

// buffers returns the slice of t's records and the free one beside it.
func (s *addrSorter) buffers(t sortTask) (src, dst []addrIdx) {
	if t.inSpare {
		return s.spare[t.lo:t.hi], s.recs[t.lo:t.hi]
	}
	return s.recs[t.lo:t.hi], s.spare[t.lo:t.hi]
}

// makeRecords fills recs with every block's address and index, in
// parallel parts, and returns the address bits that are not the same in
// every block.
func makeRecords(recs []addrIdx, addr func(i int) uint64) (differ uint64) {
	parts := (len(recs) + recordPart - 1) / recordPart
	ors := make([]uint64, parts)
	ands := make([]uint64, parts)
	forEachPart(parts, func(p int) {
		lo, hi := p*recordPart, min(len(recs), (p+1)*recordPart)
		var or, and uint64 = 0, ^uint64(0)
		for i := lo; i < hi; i++ {
			v := addr(i)
			recs[i] = addrIdx{v, int32(i)}
			or |= v
			and &= v
		}
		ors[p], ands[p] = or, and
	})
	var or, and uint64 = 0, ^uint64(0)
	for p := range ors {
		or |= ors[p]
		and &= ands[p]
	}
	return or ^ and
}

// splitDominant splits t on all cores for as long as one bucket holds
// most of its records, and returns the buckets left to finish.
func (s *addrSorter) splitDominant(t sortTask) []sortTask {
	var tasks []sortTask
	for t.size() >= parallelSplitMin && t.top > s.low {
		buckets := s.split(t, true)
		big := 0
		for i, b := range buckets {
			if b.size() > buckets[big].size() {
				big = i
			}
		}
		if 2*buckets[big].size() <= t.size() {
			return append(tasks, buckets...)
		}
		tasks = append(tasks, buckets[:big]...)
		tasks = append(tasks, buckets[big+1:]...)
		t = buckets[big]
	}
	return append(tasks, t)
}

// finish sorts t's records by their remaining bits and writes them out.
func (s *addrSorter) finish(t sortTask) {
	switch {
	case t.top <= s.low || t.size() <= 1:
		// Equal addresses: already in index order.
	case t.size() <= insertionMax:
		src, _ := s.buffers(t)
		insertionSortByAddr(src)
	case t.size() <= localSortMax:
		t = s.sortLowBits(t)
	default:
		for _, b := range s.split(t, false) {
			s.finish(b)
		}
		return
	}
	src, _ := s.buffers(t)
	for i, r := range src {
		s.starts[t.lo+i] = r.addr
		s.orig[t.lo+i] = r.idx
	}
}

// split moves t's records into buckets by their top (up to) msdBits
// differing bits, keeping their order within each bucket, and returns the
// non-empty buckets. With parallel, the cores count and move their own
// parts of the records (a core's part lands after the earlier parts'
// records in each bucket, so the order is kept).
func (s *addrSorter) split(t sortTask, parallel bool) []sortTask {
	width := min(msdBits, t.top-s.low)
	shift := t.top - width
	mask := uint64(1)<<width - 1
	src, dst := s.buffers(t)
	parts := 1
	if parallel {
		parts = max(1, min(runtime.GOMAXPROCS(0), len(src)/(parallelSplitMin/2)))
	}
	pos := make([][]int, parts)
	forEachPart(parts, func(p int) {
		lo, hi := partBounds(len(src), parts, p)
		pos[p] = make([]int, mask+1)
		countDigits(src[lo:hi], shift, mask, pos[p])
	})
	ends := bucketOffsets(pos)
	forEachPart(parts, func(p int) {
		lo, hi := partBounds(len(src), parts, p)
		scatterByDigit(src[lo:hi], dst, shift, mask, pos[p])
	})
	buckets := make([]sortTask, 0, len(ends))
	from := 0
	for _, end := range ends {
		if end > from {
			buckets = append(buckets, sortTask{lo: t.lo + from, hi: t.lo + end, top: shift, inSpare: !t.inSpare})
		}
		from = end
	}
	return buckets
}

// bucketOffsets turns each part's digit counts into the positions where
// that part's records of each digit go (all parts' records of a digit
// together, earlier parts first), and returns where each digit's bucket
// ends.
func bucketOffsets(pos [][]int) (ends []int) {
	ends = make([]int, len(pos[0]))
	sum := 0
	for d := range ends {
		for p := range pos {
			pos[p][d], sum = sum, sum+pos[p][d]
		}
		ends[d] = sum
	}
	return ends
}

// countDigits counts the records by the digit (addr>>shift)&mask.
func countDigits(recs []addrIdx, shift uint, mask uint64, count []int) {
	for _, r := range recs {
		count[(r.addr>>shift)&mask]++
	}
}

// scatterByDigit moves each record to dst[pos[digit]], advancing it.
func scatterByDigit(src, dst []addrIdx, shift uint, mask uint64, pos []int) {
	for _, r := range src {
		d := (r.addr >> shift) & mask
		dst[pos[d]] = r
		pos[d]++
	}
}

// sortLowBits sorts a small task by its bits below top, a few bits per
// pass from the lowest, and returns the task as it then lies.
func (s *addrSorter) sortLowBits(t sortTask) sortTask {
	nbits := t.top - s.low
	passes := (nbits + lsdMaxBits - 1) / lsdMaxBits
	width := (nbits + passes - 1) / passes
	mask := uint64(1)<<width - 1
	var pos [1 << lsdMaxBits]int
	for shift := s.low; shift < t.top; shift += width {
		src, dst := s.buffers(t)
		clear(pos[:])
		countDigits(src, shift, mask, pos[:])
		sum := 0
		for d := range pos[:mask+1] {
			pos[d], sum = sum, sum+pos[d]
		}
		scatterByDigit(src, dst, shift, mask, pos[:])
		t.inSpare = !t.inSpare
	}
	return t
}

// insertionSortByAddr sorts a few records by address, stably.
func insertionSortByAddr(rs []addrIdx) {
	for i := 1; i < len(rs); i++ {
		r := rs[i]
		j := i
		for j > 0 && rs[j-1].addr > r.addr {
			rs[j] = rs[j-1]
			j--
		}
		rs[j] = r
	}
}
