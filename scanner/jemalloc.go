package scanner

import "slices"

// jemalloc 5.3 keeps two kinds of pointers to live blocks in its own
// metadata, which is untracked memory and so a root. Scanned as is, they
// would make every block look reachable:
//
//   - Thread caches (tcache) hand out regions from per-size-class stacks
//     (cache_bin_t). A pop moves stack_head up and leaves the slot: every
//     slot below stack_head holds a pointer to a region the program got
//     and may still hold — or may have leaked. Those stale slots are taken
//     out of the roots.
//   - Every extent has an edata_t whose e_addr is the extent's start: the
//     first region of a slab, or the block itself for a large allocation.
//     A word that is the e_addr of a well-formed edata_t is not taken as a
//     reference.
//
//   - Each thread's rtree lookup cache (rtree_ctx, in its TLS) holds
//     (leafkey, leaf) pairs; a leafkey is an address rounded down to
//     1 GiB, which lands inside a large block that straddles such a
//     boundary.
//
// All are recognized by their layout (jemalloc's internal symbols are not
// exported), with checks strict enough that application data does not
// match by accident.

// Size classes.
var jeClasses = jemallocClasses()

// jemallocClasses lists jemalloc 5.3's size classes in index order.
func jemallocClasses() []uint64 {
	var cs []uint64
	for c := uint64(jeTinyMax); c > 0 && c <= uint64(1)<<61; {
		cs = append(cs, c)
		c = jemallocUsable(c + 1)
	}
	return cs
}

// jemallocSizeIndex is the size class index (szind) of a usable size, or
// -1 if it is not a class size.
func jemallocSizeIndex(usable uint64) int {
	i, ok := slices.BinarySearch(jeClasses, usable)
	if !ok {
		return -1
	}
	return i
}

// jemalloc 5.3 layout constants (x86-64, default configuration).
const (
	jeNBins         = 36        // SC_NBINS: classes up to 14 KiB live in slabs
	jePage          = 4096      // PAGE
	jeMaxSlab       = 256 << 10 // generous bound on a slab's size
	jeBitSlab       = 1 << 12   // e_bits: slab flag
	jeBitCommitted  = 1 << 13   // e_bits: committed flag
	jeStateShift    = 17        // e_bits: extent state (3 bits), 0 = active
	jeSzindShift    = 20        // e_bits: size class index (8 bits)
	cacheBinSize    = 24        // sizeof(cache_bin_t)
	cacheBinMinRun  = 16        // consecutive chained cache bins to believe it is a tcache
	cacheBinMaxSpan = 1 << 16   // a bin's stack is addressed by 16 low bits
	tlsSearchWindow = 64 << 10  // how far below the thread pointer to look for the tcache
)

// isEdataAddr tells whether w, which equals the start of a block of the
// given usable size, is the e_addr field of an edata_t describing that
// block's extent: prev (the word before) must be e_bits for an active,
// committed extent of the block's size class, and next (the word after)
// the extent's size. 0 stands for a neighbour outside the range read.
// The class may be larger than the request's: an aligned allocation
// (mallocx with MALLOCX_ALIGN, aligned_alloc) rounds up to a class that
// is a multiple of the alignment.
func isEdataAddr(prev, w, next, usable uint64) bool {
	bits, size := prev, next&^(jePage-1)
	if bits&jeBitCommitted == 0 || (bits>>jeStateShift)&7 != 0 {
		return false
	}
	szind := int((bits >> jeSzindShift) & 0xff)
	if szind >= len(jeClasses) || !jemallocClassFits(jeClasses[szind], usable) {
		return false
	}
	class := jeClasses[szind]
	if szind < jeNBins {
		// A slab starts on a page with its first region.
		return bits&jeBitSlab != 0 && w%jePage == 0 && size >= class && size <= jeMaxSlab
	}
	// A large extent is the block plus, by default, one page of padding
	// (cache-oblivious placement).
	return bits&jeBitSlab == 0 && (size == class || size == class+jePage)
}

// jemallocClassFits tells whether a block of this usable size (as
// computed from its request) can be in size class class: its own, or the
// class of the request rounded up to an alignment (sz_sa2u: up to a page
// for slab classes).
func jemallocClassFits(class, usable uint64) bool {
	if class == usable {
		return true
	}
	for align := uint64(32); align <= jePage; align <<= 1 {
		if jemallocUsable(roundUp(usable, align)) == class {
			return true
		}
	}
	return false
}

// jeLeafKeyAlign: an rtree leaf covers 1 GiB of address space (48-bit
// addresses, 4 KiB pages, two levels).
const jeLeafKeyAlign = 1 << 30

// isRtreeLeafKey tells whether w, followed by next, is an rtree_ctx cache
// entry: a 1 GiB aligned leafkey followed by the leaf's address.
func isRtreeLeafKey(w, next uint64) bool {
	return w%jeLeafKeyAlign == 0 && next%8 == 0 && maybeUserPointer(next)
}

// jemallocMetadata tells whether w (between prev and next), which points
// into sorted block k, is jemalloc bookkeeping rather than a reference.
func jemallocMetadata(x *blockIndex, prev, w, next uint64, k int32) bool {
	if w == x.starts[k] && isEdataAddr(prev, w, next, x.scanEnd[k]-w) {
		return true
	}
	return isRtreeLeafKey(w, next)
}

// cacheBin is one decoded cache_bin_t.
type cacheBin struct {
	head                 uint64
	lowWater, full, empt uint16
}

func decodeCacheBin(b []byte) cacheBin {
	return cacheBin{
		head:     leUint64(b[0:8]),
		lowWater: uint16(b[16]) | uint16(b[17])<<8,
		full:     uint16(b[18]) | uint16(b[19])<<8,
		empt:     uint16(b[20]) | uint16(b[21])<<8,
	}
}

// plausible tells whether the record can be a live cache bin: the head is
// an aligned pointer whose low bits lie between full and empty, as does
// the low-water mark.
func (c cacheBin) plausible() bool {
	if c.head%8 != 0 || !maybeUserPointer(c.head) {
		return false
	}
	size := c.empt - c.full
	pos := uint16(c.head) - c.full
	lw := c.lowWater - c.full
	return size%8 == 0 && pos%8 == 0 && pos <= size && lw%8 == 0 && lw <= size
}

// staleSlots is the part of the bin's stack below the head: popped slots.
func (c cacheBin) staleSlots() span {
	below := uint64(uint16(c.head) - c.full)
	return span{c.head - below, c.head}
}

// findCacheBinRun looks in b (target memory at addr) for the longest run
// of at least cacheBinMinRun chained cache bins, each bin's stack starting
// where the previous one's ends. It returns the run's offset in b and
// length in bins.
func findCacheBinRun(b []byte) (off, n int) {
	bestOff, bestN := -1, 0
	for phase := 0; phase < cacheBinSize; phase += 8 {
		run := 0
		for o := phase; o+cacheBinSize <= len(b); o += cacheBinSize {
			c := decodeCacheBin(b[o:])
			if !c.plausible() {
				run = 0
				continue
			}
			if run > 0 {
				prev := decodeCacheBin(b[o-cacheBinSize:])
				if prev.empt != c.full || !stacksAdjacent(prev, c) {
					run = 0
				}
			}
			run++
			if run > bestN {
				bestN, bestOff = run, o-(run-1)*cacheBinSize
			}
		}
	}
	if bestN < cacheBinMinRun {
		return -1, 0
	}
	return bestOff, bestN
}

// stacksAdjacent checks that two consecutive bins' stacks lie next to
// each other in memory, as one tcache's stacks do.
func stacksAdjacent(a, b cacheBin) bool {
	aEmpty := a.head + uint64(a.empt-uint16(a.head))
	bFull := b.head - uint64(uint16(b.head)-b.full)
	return aEmpty == bFull
}

// jemallocStaleSlots finds every thread's tcache in its static TLS, below
// the thread pointer (fs_base), and returns the popped slots of its
// stacks. The TLS layout is the same in every thread: the run is searched
// once and then read at the same offset in each thread.
func jemallocStaleSlots(rd *reader, maps []mapping, threadPointers []uint64) []span {
	offset, length := -1, 0 // run position relative to the thread pointer
	var stale []span
	buf := alignedBuffer(tlsSearchWindow)
	for _, tp := range threadPointers {
		if tp < tlsSearchWindow || mappingAt(maps, tp-1) < 0 {
			continue
		}
		if offset < 0 {
			m := maps[mappingAt(maps, tp-1)]
			lo := max(tp-tlsSearchWindow, m.start)
			b := readRange(rd, buf, span{lo, tp})
			if b == nil {
				continue
			}
			off, n := findCacheBinRun(b)
			if off < 0 {
				continue
			}
			offset, length = int(tp-lo)-off, n
		}
		start := tp - uint64(offset)
		b := readRange(rd, buf, span{start, start + uint64(length*cacheBinSize)})
		if b == nil {
			continue
		}
		for o := 0; o+cacheBinSize <= len(b); o += cacheBinSize {
			c := decodeCacheBin(b[o:])
			if !c.plausible() {
				continue
			}
			if s := c.staleSlots(); s.end > s.start && s.size() < cacheBinMaxSpan && !inThreadArea(maps, threadPointers, s) {
				stale = append(stale, s)
			}
		}
	}
	return normalize(stale)
}

// inThreadArea tells whether s touches a mapping that holds a thread
// pointer (a thread's stack and static TLS). A tcache's stacks never lie
// there; a bin decoded from TLS words that only look like one could
// otherwise take a thread's TLS out of the roots (seen once: a block held
// only by a __thread variable reported as leaked).
func inThreadArea(maps []mapping, threadPointers []uint64, s span) bool {
	for _, tp := range threadPointers {
		if i := mappingAt(maps, tp-1); i >= 0 && s.start < maps[i].end && maps[i].start < s.end {
			return true
		}
	}
	return false
}

// readRange reads one range fully into buf, or returns nil.
func readRange(rd *reader, buf []byte, s span) []byte {
	if s.size() > uint64(len(buf)) || s.end <= s.start {
		return nil
	}
	pieces, err := rd.read(buf, []taggedSpan{{s, 0}}, nil)
	if err != nil || len(pieces) != 1 || pieces[0].start != s.start || pieces[0].end != s.end {
		return nil
	}
	return buf[:s.size()]
}
