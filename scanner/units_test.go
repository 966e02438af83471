package scanner

import (
	"encoding/binary"
	"reflect"
	"slices"
	"testing"
	"unsafe"
)

func TestDecodeGlibcHeader(t *testing.T) {
	for _, tc := range []struct {
		name     string
		hdr, req uint64
		ok       bool
		usable   uint64
		mmapped  bool
	}{
		{"malloc(24)", 0x21, 24, true, 24, false},
		{"malloc(40)", 0x31, 40, true, 40, false},
		{"malloc(0)", 0x21, 0, true, 24, false},
		{"prev not in use", 0x30, 40, true, 40, false},
		{"non-main arena", 0x35, 33, true, 40, false},
		{"mmapped 16 MiB", 0x1001002, 16 << 20, true, 0x1001000 - 16, true},
		{"request larger than chunk", 0x21, 25, false, 0, false},
		{"slack too large", 0x10001, 40, false, 0, false},
		{"size not aligned", 0x29, 24, false, 0, false},
		{"below MINSIZE", 0x11, 8, false, 0, false},
		{"mmapped, not page sized", 0x2012, 0x1000, false, 0, false},
		{"mmapped and non-main", 0x2006, 0x1000, false, 0, false},
		{"garbage", 0xdeadbeefcafef00d, 40, false, 0, false},
	} {
		c, ok := decodeGlibcHeader(tc.hdr, tc.req)
		if ok != tc.ok || (ok && (c.usable != tc.usable || c.mmapped != tc.mmapped)) {
			t.Errorf("%s: decode(%#x, %d) = %+v, %v; want usable %d mmapped %v ok %v",
				tc.name, tc.hdr, tc.req, c, ok, tc.usable, tc.mmapped, tc.ok)
		}
	}
}

func TestGlibcUsableFromRequest(t *testing.T) {
	for req, want := range map[uint64]uint64{0: 24, 1: 24, 24: 24, 25: 40, 40: 40, 41: 56, 1000: 1000, 1001: 1016} {
		if got := glibcUsableFromRequest(req); got != want {
			t.Errorf("glibcUsableFromRequest(%d) = %d, want %d", req, got, want)
		}
	}
}

// Spot checks of jemalloc 5.3's size classes (sz_s2u).
func TestJemallocSizeClasses(t *testing.T) {
	for _, tc := range [][2]uint64{
		{0, 8}, {1, 8}, {8, 8}, {9, 16}, {16, 16}, {17, 32}, {33, 48}, {64, 64}, {65, 80},
		{113, 128}, {129, 160}, {257, 320}, {513, 640}, {1025, 1280}, {4096, 4096}, {4097, 5120},
		{14336, 14336}, {14337, 16384}, {16385, 20480}, {32769, 40960}, {1<<20 + 1, 1<<20 + 1<<18},
		{16 << 20, 16 << 20}, {16<<20 + 1, 20 << 20},
	} {
		if got := jemallocUsable(tc[0]); got != tc[1] {
			t.Errorf("jemallocUsable(%d) = %d, want %d", tc[0], got, tc[1])
		}
	}
	// The class list starts 8, 16, 32, 48, … and has four classes per
	// doubling from 64 on.
	if !slices.Equal(jeClasses[:12], []uint64{8, 16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224}) {
		t.Errorf("first classes %v", jeClasses[:12])
	}
	for _, tc := range []struct {
		usable uint64
		index  int
	}{{8, 0}, {16, 1}, {32, 2}, {96, 6}, {4096, 28}, {14336, 35}, {16384, 36}, {16 << 20, 76}, {100, -1}} {
		if got := jemallocSizeIndex(tc.usable); got != tc.index {
			t.Errorf("jemallocSizeIndex(%d) = %d, want %d", tc.usable, got, tc.index)
		}
	}
}

func TestUnknownUsable(t *testing.T) {
	for req, want := range map[uint64]uint64{0: 16, 1: 16, 16: 16, 17: 32, 100: 112} {
		if got := unknownUsable(req); got != want {
			t.Errorf("unknownUsable(%d) = %d, want %d", req, got, want)
		}
	}
}

// A glibc heap chunk's last usable word is the next chunk's header, which
// malloc's bins and top pointer refer to: that exact value is not taken as
// a pointer into the block.
func TestGlibcNextChunkHeaderIsNotAReference(t *testing.T) {
	w := newWorld()
	w.alloc(heap, 40)
	w.alloc(heap+0x100, 40)
	w.mem.put(heap-8, 0x31)
	w.mem.put(heap+0x100-8, 0x31)
	w.root(0x1000_0000, heap+40-8, heap+0x100+40-16)
	res := w.run(t, Options{Allocator: Glibc})
	assertClasses(t, res.Classes, Direct, Reachable)
}

func TestNormalizeSubtractAlign(t *testing.T) {
	rs := normalize([]span{{30, 40}, {0, 10}, {10, 20}, {35, 50}, {60, 60}, {70, 80}})
	if want := []span{{0, 20}, {30, 50}, {70, 80}}; !slices.Equal(rs, want) {
		t.Fatalf("normalize = %v, want %v", rs, want)
	}
	holes := []span{{5, 8}, {15, 32}, {45, 75}, {78, 100}}
	got := subtract(rs, spansOf(holes), false)
	if want := []span{{0, 5}, {8, 15}, {32, 45}, {75, 78}}; !slices.Equal(got, want) {
		t.Fatalf("subtract = %v, want %v", got, want)
	}
	if got := subtract([]span{{0, 100}}, spansOf(nil), false); !slices.Equal(got, []span{{0, 100}}) {
		t.Errorf("subtract nothing = %v", got)
	}
	if got := subtract([]span{{0, 10}, {20, 30}}, spansOf([]span{{0, 40}}), false); len(got) != 0 {
		t.Errorf("subtract everything = %v", got)
	}
	// Slivers of less than two words between two holes go, others stay.
	got = subtract([]span{{0, 100}}, spansOf([]span{{10, 20}, {28, 40}, {56, 90}}), true)
	if want := []span{{0, 10}, {40, 56}, {90, 100}}; !slices.Equal(got, want) {
		t.Errorf("subtract dropping slivers = %v, want %v", got, want)
	}
	if got := alignInward([]span{{1, 17}, {3, 7}, {8, 24}}, 8); !slices.Equal(got, []span{{8, 16}, {8, 24}}) {
		t.Errorf("alignInward = %v", got)
	}
}

const testMaps = `55d4c2a00000-55d4c2a01000 r--p 00000000 fd:01 1234                       /usr/bin/prog
55d4c2a01000-55d4c2a02000 r-xp 00001000 fd:01 1234                       /usr/bin/prog
55d4c2a03000-55d4c2a04000 rw-p 00003000 fd:01 1234                       /usr/bin/prog
55d4c3000000-55d4c3100000 rw-p 00000000 00:00 0                          [heap]
7f0000000000-7f0000001000 ---p 00000000 00:00 0 
7f0000001000-7f0000100000 rw-p 00000000 00:00 0 
7f0000200000-7f0000300000 rw-p 00000000 00:00 0 
7f0000400000-7f0000500000 rw-s 00000000 fd:01 777                        /var/db/data file.db
7f0000600000-7f0000700000 rw-s 00000000 00:05 99                         /dev/dri/card0
7f0000800000-7f0000900000 rw-s 00000000 00:01 12                         /dev/zero (deleted)
7f0000a00000-7f0000b00000 rw-s 00000000 00:01 13                         /memfd:pool (deleted)
7f0000c00000-7f0000d00000 rw-p 00000000 00:0e 14                         anon_inode:[perf_event]
7ffc00000000-7ffc00100000 rw-p 00000000 00:00 0                          [stack]
7ffc00200000-7ffc00202000 r--p 00000000 00:00 0                          [vvar]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
`

func TestParseMaps(t *testing.T) {
	maps, err := parseMaps([]byte(testMaps))
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 15 {
		t.Fatalf("%d mappings", len(maps))
	}
	if m := maps[7]; m.path != "/var/db/data file.db" || !m.shared() || m.inode != 777 {
		t.Errorf("mapping with a space in its path: %+v", m)
	}
	if m := maps[5]; m.path != "" || !m.anonymous() || m.start != 0x7f0000001000 {
		t.Errorf("anonymous mapping: %+v", m)
	}
	if _, err := parseMaps([]byte("zz-10 rw-p 0 0 0\n")); err == nil {
		t.Error("bad line accepted")
	}
}

func TestPlanRoots(t *testing.T) {
	maps, err := parseMaps([]byte(testMaps))
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld()
	w.alloc(0x55d4c3000100, 0x100)  // in [heap]
	w.alloc(0x7f0000280000, 0x1000) // in the anonymous mapping used as a coroutine stack
	ix, _, err := buildIndex(w.blocks, nil, Options{}, newReader(w.mem, nil))
	if err != nil {
		t.Fatal(err)
	}
	threads := []threadRoot{
		{tid: 1, sp: 0x7ffc00080000, hasRegs: true},  // main thread: [stack]
		{tid: 2, sp: 0x7f0000050008, hasRegs: true},  // thread stack above a guard page
		{tid: 3, sp: 0x7f0000280800, hasRegs: true},  // running on a tracked block
		{tid: 4, sp: 0x1234, hasRegs: true},          // SP in no mapping
		{tid: 5, sp: 0x7f0000200100, hasRegs: false}, // registers unknown
	}
	plan := planRoots(maps, threads, ix, Options{}, rootFacts{}, nil)
	want := []span{
		{0x55d4c2a03000, 0x55d4c2a04000}, // .data/.bss
		{0x55d4c3000000, 0x55d4c3000100}, // [heap] minus the tracked block
		{0x55d4c3000200, 0x55d4c3100000},
		{0x7f0000050008, 0x7f0000100000}, // thread stack from SP
		{0x7f0000200000, 0x7f0000280000}, // anonymous memory minus the tracked block …
		{0x7f0000280800, 0x7f0000300000}, // … except thread 3's live stack in it
		{0x7f0000800000, 0x7f0000900000}, // shared anonymous memory
		{0x7f0000a00000, 0x7f0000b00000}, // memfd
		{0x7ffc00080000, 0x7ffc00100000}, // [stack] from SP
	}
	got := plan.ranges
	if !slices.Equal(got, want) {
		t.Errorf("roots:")
		for _, r := range got {
			t.Errorf("  %#x-%#x", r.start, r.end)
		}
	}

	// With the red zone, each stack starts 128 bytes lower.
	plan = planRoots(maps, threads[:1], ix, Options{ScanRedZone: true}, rootFacts{}, nil)
	if i := slices.IndexFunc(plan.ranges, func(s span) bool { return s.end == 0x7ffc00100000 }); i < 0 || plan.ranges[i].start != 0x7ffc00080000-128 {
		t.Errorf("red zone not scanned: %v", plan.ranges)
	}

	// Two threads in one stack mapping: only below the lowest SP is dead.
	plan = planRoots(maps, []threadRoot{
		{sp: 0x7f0000090000, hasRegs: true}, {sp: 0x7f0000060000, hasRegs: true},
	}, ix, Options{}, rootFacts{}, nil)
	if !slices.Contains(plan.ranges, span{0x7f0000060000, 0x7f0000100000}) {
		t.Errorf("two threads in one mapping: %v", plan.ranges)
	}
}

func TestIsEdataAddr(t *testing.T) {
	edata := func(slab bool, szind, state uint64) uint64 {
		bits := uint64(3) | jeBitCommitted | szind<<jeSzindShift | state<<jeStateShift | 17<<28
		if slab {
			bits |= jeBitSlab
		}
		return bits
	}
	slabStart := uint64(0x7f00_0004_5000)
	large := uint64(0x7f00_2000_0fc0)
	for _, tc := range []struct {
		name                string
		prev, w, next, size uint64
		want                bool
	}{
		{"slab region 0", edata(true, 2, 0), slabStart, 0x1000, 32, true},
		{"large block", edata(false, 76, 0), large, 0x1001000 | 5, 16 << 20, true},
		{"wrong size class", edata(true, 3, 0), slabStart, 0x1000, 32, false},
		// mallocx(200, MALLOCX_ALIGN(256)): class 256 (szind 12), not 224.
		{"aligned to a larger class", edata(true, 12, 0), slabStart, 0x1000, 224, true},
		{"larger class no alignment gives", edata(true, 11, 0), slabStart, 0x1000, 192, false},
		{"extent not active", edata(true, 2, 1), slabStart, 0x1000, 32, false},
		{"not committed", edata(true, 2, 0) &^ jeBitCommitted, slabStart, 0x1000, 32, false},
		{"slab not page aligned", edata(true, 2, 0), slabStart + 32, 0x1000, 32, false},
		{"large size mismatch", edata(false, 76, 0), large, 0x2000000, 16 << 20, false},
		{"pointer with its length", 0, large, 16 << 20, 16 << 20, false},
		{"no context", 0, slabStart, 0x1000, 32, false},
	} {
		if got := isEdataAddr(tc.prev, tc.w, tc.next, tc.size); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFindCacheBinRun(t *testing.T) {
	// A tcache: 40 bins whose stacks follow each other at 0x7f0000a01000.
	const stacks = 0x7f00_00a0_1000
	buf := make([]byte, 64+40*cacheBinSize+64)
	pos := uint64(stacks)
	var wantStale []span
	for i := 0; i < 40; i++ {
		o := 64 + i*cacheBinSize
		ncached := uint64(8 * (i%5 + 1))
		full, empty := pos, pos+8*ncached
		head := full + 8*uint64(i%3) // i%3 slots popped
		binary.LittleEndian.PutUint64(buf[o:], head)
		binary.LittleEndian.PutUint64(buf[o+8:], 1000)
		binary.LittleEndian.PutUint16(buf[o+16:], uint16(head))
		binary.LittleEndian.PutUint16(buf[o+18:], uint16(full))
		binary.LittleEndian.PutUint16(buf[o+20:], uint16(empty))
		if head > full {
			wantStale = append(wantStale, span{full, head})
		}
		pos = empty
	}
	off, n := findCacheBinRun(buf)
	if off != 64 || n != 40 {
		t.Fatalf("run at %d, %d bins; want 64, 40", off, n)
	}
	var stale []span
	for o := off; o < off+n*cacheBinSize; o += cacheBinSize {
		if s := decodeCacheBin(buf[o:]).staleSlots(); s.end > s.start {
			stale = append(stale, s)
		}
	}
	if !slices.Equal(stale, wantStale) {
		t.Errorf("stale %v, want %v", stale, wantStale)
	}
	// Random pointer-looking data is not a tcache.
	junk := make([]byte, 4096)
	for i := 0; i+8 <= len(junk); i += 8 {
		binary.LittleEndian.PutUint64(junk[i:], 0x7f00_0000_0000+uint64(i*40))
	}
	if off, _ := findCacheBinRun(junk); off >= 0 {
		t.Errorf("found a tcache in junk at %d", off)
	}
}

func TestParseStatus(t *testing.T) {
	st := parseStatus([]byte("Name:\tx\nState:\tt (tracing stop)\nTgid:\t42\nPid:\t43\nTracerPid:\t7\n"))
	if st.State != 't' || st.Tgid != 42 || st.TracerPID != 7 {
		t.Errorf("parseStatus = %+v", st)
	}
}

// A usable size the tracer provides is trusted: no header is read.
func TestGivenUsableSize(t *testing.T) {
	w := newWorld()
	w.blocks = []Block{{Addr: heap, Size: 20}, {Addr: heap + 0x100, Size: 20}}
	w.mem.mapRange(heap, heap+0x200)
	rd := newReader(w.mem, nil)
	ix, bad, err := buildIndex(w.blocks, []uint64{40, 8}, Options{Allocator: Glibc}, rd)
	if err != nil {
		t.Fatal(err)
	}
	if got := ix.scanEnd[0] - ix.starts[0]; got != 40 {
		t.Errorf("usable %d, want the given 40", got)
	}
	if trap := ix.trapOf(0); trap != heap+32 {
		t.Errorf("trap %#x, want %#x", trap, heap+32)
	}
	// Usable < Size is ignored: the header (zeroes here) is read and
	// fails, so the size comes from the request.
	if got := ix.scanEnd[1] - ix.starts[1]; got != 24 || bad != 1 {
		t.Errorf("usable %d with %d bad headers, want 24 and 1", got, bad)
	}
	if rd.readBytes != 8 {
		t.Errorf("read %d bytes, want just the second block's header", rd.readBytes)
	}
}

// fakePagemap says pages are populated where the fake memory has them.
type fakePagemap struct{ mem *fakeMemory }

func (f fakePagemap) populated(s span, out []span) ([]span, error) {
	for a := s.start &^ (pageSize - 1); a < s.end; a += pageSize {
		if f.mem.pages[a/pageSize] == nil {
			continue
		}
		r := span{max(a, s.start), min(a+pageSize, s.end)}
		if k := len(out); k > 0 && out[k-1].end == r.start {
			out[k-1].end = r.end
		} else {
			out = append(out, r)
		}
	}
	return out, nil
}

func TestKeepPopulated(t *testing.T) {
	mem := newFakeMemory()
	mem.mapRange(0x100000, 0x102000)
	mem.mapRange(0x180000, 0x181000)
	var skipped uint64
	got := keepPopulated(fakePagemap{mem}, []span{{0x1000, 0x2000}, {0x100800, 0x200000}}, &skipped)
	want := []span{{0x1000, 0x2000}, {0x100800, 0x102000}, {0x180000, 0x181000}}
	if !slices.Equal(got, want) {
		t.Errorf("keepPopulated = %v, want %v", got, want)
	}
	if skipped != 0x200000-0x100800-0x2800 {
		t.Errorf("skipped %#x", skipped)
	}
}

func TestIsRtreeLeafKey(t *testing.T) {
	for _, tc := range []struct {
		w, next uint64
		want    bool
	}{
		{0x7f9a80000000, 0x7f9a858000c0, true},
		{0x7f9a80000000, 0, false},              // empty entry's leaf, or no context
		{0x7f9a80001000, 0x7f9a858000c0, false}, // not 1 GiB aligned
	} {
		if got := isRtreeLeafKey(tc.w, tc.next); got != tc.want {
			t.Errorf("isRtreeLeafKey(%#x, %#x) = %v, want %v", tc.w, tc.next, got, tc.want)
		}
	}
}

func TestSortIndices(t *testing.T) {
	for _, n := range []int{0, 10, 5000, 100000} {
		ks := make([]int32, n)
		x := uint32(7)
		for i := range ks {
			x = x*1664525 + 1013904223
			ks[i] = int32(x >> 2)
		}
		want := slices.Clone(ks)
		slices.Sort(want)
		sortIndices(ks, nil)
		if !slices.Equal(ks, want) {
			t.Errorf("n=%d: not sorted", n)
		}
	}
}

func TestNextWaiting(t *testing.T) {
	f := &flooder{bits: make([]uint64, 3)}
	f.addAll([]int32{3, 64, 130, 191})
	for _, tc := range []struct {
		from    int
		forward bool
		want    int
	}{
		{0, true, 3}, {4, true, 64}, {65, true, 130}, {131, true, 191}, {192, true, -1},
		{192, false, 191}, {191, false, 130}, {130, false, 64}, {64, false, 3}, {3, false, -1}, {0, false, -1},
	} {
		if got := f.nextWaiting(tc.from, tc.forward); got != tc.want {
			t.Errorf("nextWaiting(%d, forward=%v) = %d, want %d", tc.from, tc.forward, got, tc.want)
		}
	}
}

// TestFreedNotReused: memory handed out again at other bounds than a
// freed chunk's (a slab carved into another size class) is taken out of
// the freed ranges, whatever their order.
func TestFreedNotReused(t *testing.T) {
	freed := []Range{{Addr: 0x2000, Size: 0x100}, {Addr: 0x1000, Size: 0xa0}, {Addr: 0x1080, Size: 0x40}}
	reused := []Range{{Addr: 0x2080, Size: 0x20}, {Addr: 0x1000, Size: 0x10}}
	got := freedNotReused(freed, reused)
	want := []span{{0x1010, 0x10c0}, {0x2000, 0x2080}, {0x20a0, 0x2100}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("freedNotReused = %x, want %x", got, want)
	}
}

// A check holds every tracked block at once: the record stays small.
func TestBlockSize(t *testing.T) {
	if got := unsafe.Sizeof(Block{}); got != 24 {
		t.Errorf("Block takes %d bytes, want 24", got)
	}
}

// edgeList keeps every edge, in order, across its chunks and the lists
// it takes.
func TestEdgeList(t *testing.T) {
	var a, b edgeList
	var want []Edge
	for i := range int32(3 * edgeChunkMax) {
		e := Edge{From: i, To: i + 1}
		if i%3 == 0 {
			b.add(e)
			continue
		}
		a.add(e)
		want = append(want, e)
	}
	for i := range int32(3 * edgeChunkMax) {
		if i%3 == 0 {
			want = append(want, Edge{From: i, To: i + 1})
		}
	}
	a.take(&b)
	if b.n != 0 || len(b.chunks) != 0 {
		t.Errorf("taken list still holds %d edges", b.n)
	}
	if got := a.slice(); !slices.Equal(got, want) {
		t.Errorf("got %d edges, want %d (or in another order)", len(got), len(want))
	}
	if a.n != 0 {
		t.Errorf("slice left %d edges", a.n)
	}
}
