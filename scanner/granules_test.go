package scanner

import (
	"encoding/binary"
	"testing"
)

// testBlock is a block as the index sees it: accepted bytes, scanned
// bytes, glibc heap chunk (trap at its last usable word) or not.
type testBlock struct {
	start, accept, usable uint64
	glibc                 bool
}

func indexOf(bs []testBlock) *blockIndex {
	x := newSortedIndex(len(bs), func(i int) uint64 { return bs[i].start })
	for k := range x.starts {
		b := bs[x.orig[k]]
		x.setSizes(k, b.accept, b.usable, b.glibc)
	}
	x.finish()
	return x
}

// referenceFind is the lookup done the simple way: a search of the sorted
// block records.
func referenceFind(x *blockIndex, w uint64) int {
	for k := range x.n() {
		b := x.boundsOf(k)
		if x.flags[k]&flagDuplicate == 0 && b.start <= w && w < b.end && w != b.trap {
			return k
		}
	}
	return -1
}

// checkAgainstReference compares find and resolveBatch with the reference
// for every word of [from, to) (step 1) and, through resolveBatch, as
// more and more blocks are reached: every third, then every second, then
// all. Each step resolves the words twice, the second time with the
// granules the first marked done.
func checkAgainstReference(t *testing.T, x *blockIndex, from, to uint64) {
	t.Helper()
	var ws []uint64
	for w := from; w < to; w++ {
		if got, want := x.find(w), referenceFind(x, w); got != want {
			t.Fatalf("find(%#x) = %d, want %d", w, got, want)
		}
		if w-x.lo < x.span {
			ws = append(ws, w)
		}
	}
	out := make([]int32, len(ws))
	for _, step := range []int{3, 2, 1} {
		for k := 0; k < x.n(); k += step {
			x.markReached(k)
		}
		for pass := 1; pass <= 2; pass++ {
			x.resolveBatch(ws, out)
			for j, w := range ws {
				want := referenceFind(x, w)
				if want >= 0 && x.isReached(want) {
					want = -1
				}
				if int(out[j]) != want {
					t.Fatalf("every %d-th block reached, pass %d: resolveBatch(%#x) = %d, want %d",
						step, pass, w, out[j], want)
				}
			}
		}
	}
}

func TestGranuleTableExact(t *testing.T) {
	const base = 0x5555_0000_0000
	// glibc-like: 48-byte chunks (40 usable), a 24-byte request accepted
	// only up to its size (ExactBounds), a crowded granule of tiny blocks,
	// a gap, a block whose range is cut by the next one, a duplicate.
	bs := []testBlock{
		{base, 40, 40, true},
		{base + 48, 40, 40, true},
		{base + 96, 24, 40, true},
		{base + 144, 8, 8, false},
		{base + 152, 8, 8, false},
		{base + 160, 8, 8, false},
		{base + 168, 8, 8, false},
		{base + 400, 100, 100, true},
		{base + 480, 40, 40, true},
		{base + 480, 40, 40, true},
	}
	x := indexOf(bs)
	cases := map[uint64]int{
		base: 0, base + 31: 0, base + 32: -1, base + 39: 0, base + 40: -1,
		base + 48: 1, base + 80: -1, base + 96: 2, base + 119: 2, base + 120: -1, base + 136: -1,
		base + 144: 3, base + 152: 4, base + 160: 5, base + 175: 6, base + 176: -1,
		base + 399: -1, base + 400: 7, base + 479: 7, base + 472: 7, base + 480: 8,
		base + 512: -1, base + 519: 8, base + 520: -1,
	}
	for w, want := range cases {
		if got := x.find(w); got != want {
			t.Errorf("find(base+%d) = %d, want %d", w-base, got, want)
		}
	}
	checkAgainstReference(t, x, base-64, base+600)
}

// A block cut by the next one keeps its trap when the trap is still
// inside: the index stores it as a distance from the scanned end.
func TestTrapSurvivesCut(t *testing.T) {
	const base = 0x5555_0000_0000
	x := indexOf([]testBlock{{base, 40, 40, true}, {base + 36, 8, 8, false}})
	if got := x.trapOf(0); got != base+32 {
		t.Fatalf("trap %#x, want %#x", got, uint64(base+32))
	}
	for w, want := range map[uint64]int{base + 31: 0, base + 32: -1, base + 35: 0, base + 36: 1} {
		if got := x.find(w); got != want {
			t.Errorf("find(base+%d) = %d, want %d", w-base, got, want)
		}
	}
	checkAgainstReference(t, x, base-64, base+64)
}

// Clusters far apart, and a cluster of blocks so sparse that its granules
// are too large for the table: every word there is searched.
func TestGranuleTableClustersAndLargeGranules(t *testing.T) {
	const base = 0x7000_0000_0000
	var bs []testBlock
	for i := uint64(0); i < 40; i++ {
		bs = append(bs, testBlock{base + i*64, 56, 56, true})
	}
	far := uint64(base + 1<<32)
	for i := uint64(0); i < 6; i++ {
		bs = append(bs, testBlock{far + i*(200<<10), 1000, 1000, false})
	}
	x := indexOf(bs)
	if len(x.clusters) != 2 {
		t.Fatalf("%d clusters, want 2", len(x.clusters))
	}
	if x.clusters[1].shift <= maxGranShift {
		t.Fatalf("sparse cluster has granule shift %d, want > %d", x.clusters[1].shift, maxGranShift)
	}
	checkAgainstReference(t, x, base-100, base+40*64+100)
	for i := uint64(0); i < 6; i++ {
		a := far + i*(200<<10)
		checkAgainstReference(t, x, a-20, a+1020)
	}
	if got := x.find(base + 1<<31); got != -1 {
		t.Errorf("word between clusters found block %d", got)
	}
}

// FuzzGranuleTable builds an index from fuzzed blocks and compares the
// table's answers with a search of the block records for every word near
// the blocks.
func FuzzGranuleTable(f *testing.F) {
	f.Add([]byte{16, 8, 1, 16, 8, 0, 0, 40, 1, 200, 3, 0})
	f.Add([]byte{4, 4, 0, 4, 4, 0, 4, 4, 0, 4, 4, 0, 4, 4, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		const base = 0x5555_0000_0000
		var bs []testBlock
		addr := uint64(base)
		for i := 0; i+3 <= len(data) && len(bs) < 64; i += 3 {
			gap, size, kind := uint64(data[i]), uint64(data[i+1]), data[i+2]
			addr += gap * 8
			if kind&4 != 0 {
				addr += uint64(binary.LittleEndian.Uint16([]byte{data[i], data[i+1]})) << 6 // far apart
			}
			accept := size*8 + uint64(kind&1)
			usable := accept + uint64(kind&2)*4
			bs = append(bs, testBlock{addr, max(accept, 1), max(usable, 1), kind&8 != 0})
		}
		if len(bs) == 0 {
			return
		}
		x := indexOf(bs)
		last := bs[len(bs)-1]
		if last.start+last.usable-base > 1<<20 {
			for _, b := range bs {
				checkAgainstReference(t, x, b.start-16, b.start+b.usable+16)
			}
			return
		}
		checkAgainstReference(t, x, base-16, last.start+last.usable+32)
	})
}

func TestGlibcTiledChunks(t *testing.T) {
	starts := []uint64{0x1000, 0x1020, 0x1050, 0x1460, 0x1480}
	sizes := []uint64{0, 24, 1000, 8, 8}
	// 0: malloc(0) takes 32 bytes: tiled. 1: 24 bytes take 32, the next
	// block is 48 away: a larger chunk (or a free one between), read it.
	// 2: 1000 bytes take 1008 = 0x3f0, next at 0x410: read. 3: 8 bytes
	// take 32: tiled. 4: the last block: read.
	want := []bool{true, false, false, true, false}
	for k := range want {
		if got := glibcTiled(starts, k, sizes[k]); got != want[k] {
			t.Errorf("block %d: tiled = %v, want %v", k, got, want[k])
		}
	}
}

func TestWindowBatch(t *testing.T) {
	var b windowBatch
	// Dense: 1 KiB blocks 16 bytes apart are read as one window.
	for i := uint64(0); i < 100; i++ {
		if !b.add(span{0x10000 + i*1040, 0x10000 + i*1040 + 1032}) {
			t.Fatalf("block %d refused", i)
		}
	}
	if !b.worth() || b.ranges != 1 {
		t.Errorf("dense: worth %v, ranges %d; want true, 1", b.worth(), b.ranges)
	}
	// Sparse: 64-byte blocks 64 KiB apart are not.
	b = windowBatch{}
	for i := uint64(0); i < 20; i++ {
		b.add(span{0x10000 + i<<16, 0x10000 + i<<16 + 64})
	}
	if b.worth() || b.ranges != 20 {
		t.Errorf("sparse: worth %v, ranges %d; want false, 20", b.worth(), b.ranges)
	}
	// A large block, or one that overflows the buffer, is refused.
	if b.add(span{0x100000, 0x100000 + sparseMin}) {
		t.Error("large block accepted")
	}
	if b.add(span{0x10000 + readBufSize, 0x10000 + readBufSize + 8}) {
		t.Error("block past the read buffer accepted")
	}
}
