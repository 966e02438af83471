package scanner

import (
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
)

// fakeMemory is a sparse address space made of 4 KiB pages; reading an
// absent page fails like reading unmapped memory.
type fakeMemory struct {
	pages map[uint64][]byte
}

func newFakeMemory() *fakeMemory { return &fakeMemory{pages: map[uint64][]byte{}} }

func (f *fakeMemory) page(addr uint64) []byte {
	p := f.pages[addr/pageSize]
	if p == nil {
		p = make([]byte, pageSize)
		f.pages[addr/pageSize] = p
	}
	return p
}

// mapRange makes [start, end) readable (zeroed).
func (f *fakeMemory) mapRange(start, end uint64) {
	for a := start &^ (pageSize - 1); a < end; a += pageSize {
		f.page(a)
	}
}

func (f *fakeMemory) unmap(start, end uint64) {
	for a := start &^ (pageSize - 1); a < end; a += pageSize {
		delete(f.pages, a/pageSize)
	}
}

func (f *fakeMemory) put(addr, val uint64) {
	binary.LittleEndian.PutUint64(f.page(addr)[addr%pageSize:], val)
}

func (f *fakeMemory) readv(dst []byte, remote []span) (int, error) {
	n := 0
	for _, s := range remote {
		for a := s.start; a < s.end; {
			p := f.pages[a/pageSize]
			if p == nil {
				return n, nil
			}
			c := copy(dst[n:n+int(min(s.end, (a|(pageSize-1))+1)-a)], p[a%pageSize:])
			n += c
			a += uint64(c)
		}
	}
	return n, nil
}

func (f *fakeMemory) close() error { return nil }

// world is a synthetic process: memory, tracked blocks, roots.
type world struct {
	mem    *fakeMemory
	blocks []Block
	roots  []span
	regs   []uint64
}

func newWorld() *world { return &world{mem: newFakeMemory()} }

// alloc adds a tracked block and maps its memory.
func (w *world) alloc(addr, size uint64) int {
	w.blocks = append(w.blocks, Block{Addr: addr, Size: size})
	w.mem.mapRange(addr, addr+unknownUsable(size))
	return len(w.blocks) - 1
}

// root adds a root range holding the given words.
func (w *world) root(addr uint64, words ...uint64) {
	w.mem.mapRange(addr, addr+uint64(8*max(len(words), 1)))
	for i, v := range words {
		w.mem.put(addr+uint64(8*i), v)
	}
	w.roots = append(w.roots, span{addr, addr + uint64(8*len(words))})
}

// link stores a pointer to block `to` (plus off) at word `slot` of `from`.
func (w *world) link(from, slot, to int, off uint64) {
	w.mem.put(w.blocks[from].Addr+uint64(8*slot), w.blocks[to].Addr+off)
}

// run scans the world as Check would after the freeze.
func (w *world) run(t *testing.T, opts Options) *Result {
	t.Helper()
	rd := newReader(w.mem, nil)
	ix, _, err := buildIndex(w.blocks, nil, opts, rd)
	if err != nil {
		t.Fatal(err)
	}
	m := newMarker(ix, rd, opts, opts.Allocator == Jemalloc)
	m.markWords(w.regs)
	if err := m.markRoots(normalize(slices.Clone(w.roots))); err != nil {
		t.Fatal(err)
	}
	if err := m.scanUnreachable(); err != nil {
		t.Fatal(err)
	}
	a := &analysis{blocks: w.blocks, ix: ix, edges: m.edges}
	a.stats.ScannedBytes = rd.readBytes
	a.stats.UnreadableBytes = rd.unreadableBytes
	return a.result()
}

func assertClasses(t *testing.T, got []Class, want ...Class) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("classes %v, want %v", got, want)
	}
}

const heap = 0x5555_0000_0000

func TestDroppedListIsOneDirectManyIndirect(t *testing.T) {
	w := newWorld()
	for i := 0; i < 5; i++ {
		w.alloc(heap+uint64(i)*0x100, 32)
	}
	for i := 0; i < 4; i++ {
		w.link(i, 0, i+1, 0)
	}
	w.root(0x1000_0000, 0, 42, heap-8) // nothing pointing into a block
	res := w.run(t, Options{})
	assertClasses(t, res.Classes, Direct, Indirect, Indirect, Indirect, Indirect)
	want := []Edge{{0, 1}, {1, 2}, {2, 3}, {3, 4}}
	if !slices.Equal(res.Edges, want) {
		t.Errorf("edges %v, want %v", res.Edges, want)
	}
	if res.Stats.Direct != 1 || res.Stats.Indirect != 4 {
		t.Errorf("stats %+v", res.Stats)
	}
}

func TestKeptListIsReachable(t *testing.T) {
	w := newWorld()
	for i := 0; i < 5; i++ {
		w.alloc(heap+uint64(i)*0x100, 32)
	}
	for i := 0; i < 4; i++ {
		w.link(i, 0, i+1, 0)
	}
	w.root(0x1000_0000, heap)
	res := w.run(t, Options{})
	assertClasses(t, res.Classes, Reachable, Reachable, Reachable, Reachable, Reachable)
	if len(res.Edges) != 0 {
		t.Errorf("edges among reachable blocks kept: %v", res.Edges)
	}
}

// A long list is flooded with a work list, not recursion.
func TestLongListFloodFill(t *testing.T) {
	w := newWorld()
	const n = 200_000
	for i := 0; i < n; i++ {
		w.alloc(heap+uint64(i)*32, 32)
	}
	for i := 0; i < n-1; i++ {
		w.link(i, 1, i+1, 8)
	}
	w.root(0x1000_0000, heap+16)
	res := w.run(t, Options{})
	if res.Stats.Reachable != n {
		t.Fatalf("%d reachable, want %d", res.Stats.Reachable, n)
	}
}

// One block pointing to many more than the flood's list holds: the list
// is full, and sweeps find the blocks left out of it, then those the
// first found behind their cursor.
func TestFanOutFloodFill(t *testing.T) {
	const n, back = 20_000, 1_000
	w := fanOutWorld(n, back, func(i int) int { return i })
	res := w.run(t, Options{})
	if res.Stats.Reachable != len(w.blocks) {
		t.Fatalf("%d reachable, want %d", res.Stats.Reachable, len(w.blocks))
	}
}

// fanOutWorld is a rooted hub pointing to n fan blocks at ascending
// addresses, below which lie back blocks that only fan blocks reach: fan
// block i points to back block backOf(i), where that is below back.
func fanOutWorld(n, back int, backOf func(i int) int) *world {
	w := newWorld()
	for i := 0; i < back; i++ {
		w.alloc(heap+uint64(i)*32, 32)
	}
	fan := make([]int, n)
	for i := range fan {
		fan[i] = w.alloc(heap+0x10_0000+uint64(i)*32, 32)
		if j := backOf(i); j < back {
			w.link(fan[i], 0, j, 0)
		}
	}
	hub := w.alloc(heap+0x100_0000, uint64(8*n))
	for i, b := range fan {
		w.link(hub, i, b, 0)
	}
	w.root(0x1000_0000, w.blocks[hub].Addr)
	return w
}

// A hub reaching more blocks in one batch than a work list holds
// (workListMax): the batch spills the others to the flood's bitmap, and
// every block, those only the spilled ones reach included, is reached.
func TestSpilledFanOutFloodFill(t *testing.T) {
	const n, back = 3 * workListMax, 1_000
	// The back blocks are reached only from the last fan blocks.
	w := fanOutWorld(n, back, func(i int) int { return n - 1 - i })
	res := w.run(t, Options{})
	if res.Stats.Reachable != len(w.blocks) || res.Stats.Direct != 0 || res.Stats.Indirect != 0 {
		t.Fatalf("%d reachable, %d direct, %d indirect; want %d, 0, 0",
			res.Stats.Reachable, res.Stats.Direct, res.Stats.Indirect, len(w.blocks))
	}
}

func TestLeakedCycleIsAllIndirect(t *testing.T) {
	w := newWorld()
	a, b, c := w.alloc(heap, 32), w.alloc(heap+0x100, 32), w.alloc(heap+0x200, 32)
	w.link(a, 0, b, 0)
	w.link(b, 0, c, 0)
	w.link(c, 0, a, 0)
	res := w.run(t, Options{})
	assertClasses(t, res.Classes, Indirect, Indirect, Indirect)
}

func TestSelfPointerDoesNotCount(t *testing.T) {
	w := newWorld()
	self := w.alloc(heap, 32)
	w.link(self, 1, self, 0)
	other := w.alloc(heap+0x100, 32) // points to itself and is pointed to by self2
	w.link(other, 0, other, 16)
	self2 := w.alloc(heap+0x200, 32)
	w.link(self2, 0, other, 0)
	res := w.run(t, Options{})
	assertClasses(t, res.Classes, Direct, Indirect, Direct)
}

func TestInteriorAndSlackPointers(t *testing.T) {
	// Unknown allocator: usable = request rounded up to 16.
	w := newWorld()
	w.alloc(heap, 100)       // usable 112
	w.alloc(heap+0x100, 200) // usable 208
	w.alloc(heap+0x200, 20)  // usable 32: referenced only in its slack
	w.alloc(heap+0x300, 20)  // referenced one past its usable end
	w.alloc(heap+0x400, 20)  // referenced at its last requested byte
	w.root(0x1000_0000, heap+17, heap+0x100+80, heap+0x200+25, heap+0x300+32, heap+0x400+19)
	res := w.run(t, Options{})
	assertClasses(t, res.Classes, Reachable, Reachable, Reachable, Direct, Reachable)
	res = w.run(t, Options{ExactBounds: true})
	assertClasses(t, res.Classes, Reachable, Reachable, Direct, Direct, Reachable)
}

// A block is scanned over its usable size: a pointer stored past the
// request, in the slack, keeps its target alive.
func TestPointerStoredInSlack(t *testing.T) {
	w := newWorld()
	holder := w.alloc(heap, 20) // usable 32
	target := w.alloc(heap+0x100, 8)
	w.mem.put(w.blocks[holder].Addr+24, w.blocks[target].Addr)
	w.root(0x1000_0000, heap)
	for _, exact := range []bool{false, true} {
		res := w.run(t, Options{ExactBounds: exact})
		assertClasses(t, res.Classes, Reachable, Reachable)
	}
}

func TestPointerFilter(t *testing.T) {
	for _, tc := range []struct {
		w    uint64
		want bool
	}{
		{0, false},
		{16<<10 - 1, false},
		{16 << 10, true},
		{0x7fff_ffff_f000, true},
		{0x8000_0000_0000, false},      // bit 47: not a user address
		{0xffff_8000_0000_0000, false}, // kernel
		{0x3e00_5555_0000_1000, true},  // LAM tag bits 57-62 are tolerated
		{0x0100_5555_0000_1000, false}, // bit 56
	} {
		if got := maybeUserPointer(tc.w); got != tc.want {
			t.Errorf("maybeUserPointer(%#x) = %v, want %v", tc.w, got, tc.want)
		}
	}
	// Blocks at absurd addresses are never matched by filtered words.
	w := newWorld()
	w.alloc(0x2000, 16) // below 16 KiB
	w.alloc(heap, 16)
	w.root(0x1000_0000, 0x2000, heap)
	res := w.run(t, Options{})
	assertClasses(t, res.Classes, Direct, Reachable)
}

func TestRegistersAreRoots(t *testing.T) {
	w := newWorld()
	w.alloc(heap, 32)
	w.alloc(heap+0x100, 32)
	w.regs = []uint64{7, heap + 0x100 + 8}
	res := w.run(t, Options{})
	assertClasses(t, res.Classes, Direct, Reachable)
}

func TestUnalignedPointers(t *testing.T) {
	w := newWorld()
	w.alloc(heap, 32)
	// The pointer sits at byte offset 3 of the root.
	w.mem.mapRange(0x1000_0000, 0x1000_0010)
	b := make([]byte, 16)
	binary.LittleEndian.PutUint64(b[3:], heap)
	w.mem.put(0x1000_0000, binary.LittleEndian.Uint64(b[0:]))
	w.mem.put(0x1000_0008, binary.LittleEndian.Uint64(b[8:]))
	w.roots = []span{{0x1000_0000, 0x1000_0010}}
	assertClasses(t, w.run(t, Options{}).Classes, Direct)
	assertClasses(t, w.run(t, Options{ScanUnaligned: true}).Classes, Reachable)
}

// An unaligned pointer that straddles two read chunks of one large range
// is still found.
func TestUnalignedAcrossChunks(t *testing.T) {
	w := newWorld()
	w.alloc(heap, 32)
	base := uint64(0x2000_0000)
	w.mem.mapRange(base, base+readBufSize+4096)
	at := base + readBufSize - 3
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], heap)
	for i := 0; i < 8; i++ {
		a := at + uint64(i)
		w.mem.page(a)[a%pageSize] = b[i]
	}
	w.roots = []span{{base, base + readBufSize + 4096}}
	assertClasses(t, w.run(t, Options{ScanUnaligned: true}).Classes, Reachable)
}

// Unreadable pages in a root range or a block are skipped; the rest is
// still scanned.
func TestUnreadablePagesAreSkipped(t *testing.T) {
	w := newWorld()
	a := w.alloc(heap, 32)
	big := w.alloc(heap+0x10000, 3*pageSize) // its middle page vanished
	c := w.alloc(heap+0x20000, 32)
	rootBase := uint64(0x1000_0000)
	w.mem.mapRange(rootBase, rootBase+3*pageSize)
	w.mem.put(rootBase, w.blocks[big].Addr)
	w.mem.put(rootBase+2*pageSize+8, w.blocks[a].Addr) // after the hole
	w.mem.unmap(rootBase+pageSize, rootBase+2*pageSize)
	w.roots = []span{{rootBase, rootBase + 3*pageSize}}
	w.mem.put(w.blocks[big].Addr+2*pageSize+16, w.blocks[c].Addr)
	w.mem.unmap(w.blocks[big].Addr+pageSize, w.blocks[big].Addr+2*pageSize)
	res := w.run(t, Options{})
	assertClasses(t, res.Classes, Reachable, Reachable, Reachable)
	if res.Stats.UnreadableBytes != 2*pageSize {
		t.Errorf("UnreadableBytes = %d, want %d", res.Stats.UnreadableBytes, 2*pageSize)
	}
}

func TestReaderBatchesAndSkips(t *testing.T) {
	mem := newFakeMemory()
	mem.mapRange(0x10000, 0x13000)
	mem.unmap(0x11000, 0x12000)
	mem.mapRange(0x20000, 0x21000)
	rd := newReader(mem, nil)
	buf := alignedBuffer(1 << 16)
	batch := []taggedSpan{
		{span{0x10800, 0x12800}, 1}, // crosses the hole
		{span{0x11100, 0x11200}, 2}, // entirely in the hole
		{span{0x20000, 0x20100}, 3},
		{span{0x30000, 0x30008}, 4}, // unmapped
	}
	pieces, err := rd.read(buf, batch, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []piece{
		{start: 0x10800, end: 0x11000, off: 0, tag: 1},
		{start: 0x12000, end: 0x12800, off: 0x1800, tag: 1},
		{start: 0x20000, end: 0x20100, off: 0x2100, tag: 3},
	}
	if !slices.Equal(pieces, want) {
		t.Errorf("pieces %+v\nwant   %+v", pieces, want)
	}
	if rd.unreadableBytes != 0x1000+0x100+8 || rd.readBytes != 0x800+0x800+0x100 {
		t.Errorf("read %#x, unreadable %#x", rd.readBytes, rd.unreadableBytes)
	}
}

func TestReclassifyTreatsIgnoredAsRoots(t *testing.T) {
	w := newWorld()
	for i := 0; i < 4; i++ { // list 0 -> 1 -> 2 -> 3
		w.alloc(heap+uint64(i)*0x100, 32)
	}
	for i := 0; i < 3; i++ {
		w.link(i, 0, i+1, 0)
	}
	x, y, z := w.alloc(heap+0x1000, 32), w.alloc(heap+0x1100, 32), w.alloc(heap+0x1200, 32)
	w.link(x, 0, z, 0) // x -> z <- y
	w.link(y, 0, z, 0)
	res := w.run(t, Options{})
	assertClasses(t, res.Classes, Direct, Indirect, Indirect, Indirect, Direct, Direct, Indirect)
	assertClasses(t, res.Reclassify(nil), res.Classes...)

	// Suppressing the list's head makes its tail reachable.
	ign := make([]bool, len(w.blocks))
	ign[0] = true
	assertClasses(t, res.Reclassify(ign), Ignored, Reachable, Reachable, Reachable, Direct, Direct, Indirect)

	// Suppressing a block in the middle of the list: what it reaches is
	// no longer leaked; the head stays a direct leak.
	ign = make([]bool, len(w.blocks))
	ign[2] = true
	assertClasses(t, res.Reclassify(ign), Direct, Indirect, Ignored, Reachable, Direct, Direct, Indirect)

	// z is reachable from suppressed x even though y also points to it.
	ign = []bool{false, false, false, false, true} // shorter than Blocks
	assertClasses(t, res.Reclassify(ign), Direct, Indirect, Indirect, Indirect, Ignored, Direct, Reachable)

	// Reclassify needs only the stored fields.
	stored := &Result{Blocks: res.Blocks, Classes: res.Classes, Edges: res.Edges}
	assertClasses(t, stored.Reclassify([]bool{true}), Ignored, Reachable, Reachable, Reachable, Direct, Direct, Indirect)
}

func TestDuplicateAndOverlappingBlocks(t *testing.T) {
	w := newWorld()
	w.alloc(heap, 64)
	w.alloc(heap+0x20, 16) // overlaps the first: the first is cut at 0x20
	w.alloc(heap, 64)      // duplicate of the first
	w.alloc(heap+0x100, 16)
	w.root(0x1000_0000, heap+0x28, heap+8)
	res := w.run(t, Options{})
	assertClasses(t, res.Classes, Reachable, Reachable, Reachable, Direct)
	w.roots = nil
	res = w.run(t, Options{})
	assertClasses(t, res.Classes, Direct, Direct, Direct, Direct)
	ign := []bool{true}
	assertClasses(t, res.Reclassify(ign), Ignored, Direct, Ignored, Direct)
}

func TestEmptySnapshot(t *testing.T) {
	w := newWorld()
	w.root(0x1000_0000, heap)
	res := w.run(t, Options{})
	if len(res.Classes) != 0 || len(res.Edges) != 0 {
		t.Errorf("result %+v", res)
	}
}

// Random pointer graphs, scanned by the engine (sweeps, list rounds,
// parallel workers), against a direct implementation of LSan's
// classification.
func TestRandomGraphsMatchReference(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		r := rand.New(rand.NewPCG(seed, 99))
		n := 2000 + r.IntN(20000)
		w := newWorld()
		out := make([][]int, n)
		for i := 0; i < n; i++ {
			w.alloc(heap+uint64(i)*48, 32)
		}
		for i := 0; i < n; i++ {
			for slot := 0; slot < 4; slot++ {
				if r.IntN(3) == 0 {
					continue
				}
				var to int
				switch r.IntN(3) {
				case 0:
					to = (i + 1) % n // lists in address order…
				case 1:
					to = (i + n - 1) % n // … and in reverse
				default:
					to = r.IntN(n)
				}
				w.link(i, slot, to, uint64(8*r.IntN(4)))
				out[i] = append(out[i], to)
			}
		}
		var roots []uint64
		var rootIdx []int
		for j := 0; j < 1+r.IntN(n/50+1); j++ {
			k := r.IntN(n)
			roots = append(roots, w.blocks[k].Addr+uint64(8*r.IntN(4)))
			rootIdx = append(rootIdx, k)
		}
		w.root(0x1000_0000, roots...)
		res := w.run(t, Options{})

		// Reference: reachability by breadth-first search, then Indirect
		// for the unreachable blocks another unreachable block points to.
		reach := make([]bool, n)
		queue := append([]int(nil), rootIdx...)
		for _, k := range rootIdx {
			reach[k] = true
		}
		for len(queue) > 0 {
			u := queue[0]
			queue = queue[1:]
			for _, v := range out[u] {
				if !reach[v] {
					reach[v] = true
					queue = append(queue, v)
				}
			}
		}
		want := make([]Class, n)
		for i := range want {
			if reach[i] {
				want[i] = Reachable
			}
		}
		for u := 0; u < n; u++ {
			if reach[u] {
				continue
			}
			for _, v := range out[u] {
				if v != u && !reach[v] {
					want[v] = Indirect
				}
			}
		}
		if !slices.Equal(res.Classes, want) {
			bad := 0
			for i := range want {
				if res.Classes[i] != want[i] {
					bad++
				}
			}
			t.Errorf("seed %d, %d blocks: %d classes differ from the reference", seed, n, bad)
		}
	}
}
