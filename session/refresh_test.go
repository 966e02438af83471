package session

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/lsan-project/lsan/bpf"
	"github.com/lsan-project/lsan/scanner"
)

// fakeTracer holds a process's blocks as a tracer's map would; the
// methods a check's set does not use are left nil.
type fakeTracer struct {
	tracer
	blocks []bpf.Block
}

func (f *fakeTracer) Blocks(int) ([]bpf.Block, error)     { return f.blocks, nil }
func (f *fakeTracer) Freed(int) ([]bpf.FreedRange, error) { return nil, nil }
func (f *fakeTracer) Funcs() []bpf.AllocatorFunc          { return []bpf.AllocatorFunc{{Name: "malloc"}} }
func (f *fakeTracer) FuncName(uint16) string              { return "malloc" }
func (f *fakeTracer) Allocator() *bpf.Allocator {
	libc := &bpf.MappedObject{Path: "/usr/lib/x86_64-linux-gnu/libc.so.6"}
	return &bpf.Allocator{Bindings: map[string]bpf.Binding{"malloc": {Object: libc}}}
}

func forkSession(ft *fakeTracer) *Session {
	return &Session{cfg: Config{PID: 7, Snapshot: SnapshotFork}, tracer: ft, allocs: ft}
}

// TestSecondCopyConfirms follows the last check of lsan -p: its first copy
// finds A, B and D leaked and holds them back (no earlier check found
// them); before the second copy, B is freed and its address handed out
// again (B2), C is freed, E allocated, G allocated after the second fork.
// The second copy, finding every block unreferenced, must report A and D
// (leaked in both copies) and nothing else: not B2 at B's address.
func TestSecondCopyConfirms(t *testing.T) {
	a := bpf.Block{PID: 7, Addr: 0x1000, Size: 32, TimestampNS: 10, StackID: 1}
	b := bpf.Block{PID: 7, Addr: 0x2000, Size: 32, TimestampNS: 20, StackID: 1}
	c := bpf.Block{PID: 7, Addr: 0x3000, Size: 64, TimestampNS: 30, StackID: 2}
	d := bpf.Block{PID: 7, Addr: 0x4000, Size: 16, TimestampNS: 40, StackID: 2}
	b2 := bpf.Block{PID: 7, Addr: 0x2000, Size: 32, TimestampNS: 120, StackID: 1}
	e := bpf.Block{PID: 7, Addr: 0x5000, Size: 8, TimestampNS: 130, StackID: 3}
	g := bpf.Block{PID: 7, Addr: 0x6000, Size: 8, TimestampNS: 300, StackID: 3}

	ft := &fakeTracer{blocks: []bpf.Block{a, b, c, d}}
	s := forkSession(ft)
	tb, _, err := s.readTracked(100)
	if err != nil {
		t.Fatal(err)
	}
	tracked := tb.done()
	classes := []scanner.Class{scanner.Direct, scanner.Direct, scanner.Reachable, scanner.Indirect}
	held, leaked := s.confirmLeaks(tracked, classes, true, true)
	if held != 3 || s.leakedBefore != nil {
		t.Fatalf("first copy: held %d, kept %v; want 3 held, nothing but the bits kept", held, s.leakedBefore)
	}
	s.firstCopy = &firstCopy{tb: tb, leaked: leaked}

	ft.blocks = []bpf.Block{e, d, b2, a, g} // another order than the first read's
	reused, err := s.refreshTracked(s.firstCopy, 200)
	if err != nil {
		t.Fatal(err)
	}
	if len(reused) != 1 || reused[0] != blockRange(g) {
		t.Errorf("reused = %+v, want G's memory alone", reused)
	}
	if got, want := ids(tracked), []blockID{{0x1000, 10}, {0x2000, 120}, {0x4000, 40}, {0x5000, 130}}; !slices.Equal(got, want) {
		t.Fatalf("refreshed set = %v, want %v", got, want)
	}
	classes = slices.Repeat([]scanner.Class{scanner.Direct}, len(tracked.blocks))
	held, _ = s.confirmLeaks(tracked, classes, true, true)
	if got, want := reported(tracked, classes), []blockID{{0x1000, 10}, {0x4000, 40}}; held != 2 || !slices.Equal(got, want) {
		t.Errorf("second copy reports %v (held %d), want %v (B2 and E held)", got, held, want)
	}

	// The copy cost too much: the check stops the target and reads the
	// set again (forkedAt 0), which now holds G too.
	if _, err := s.refreshTracked(s.firstCopy, 0); err != nil {
		t.Fatal(err)
	}
	classes = slices.Repeat([]scanner.Class{scanner.Direct}, len(tracked.blocks))
	if held, _ = s.confirmLeaks(tracked, classes, true, true); held != 3 {
		t.Errorf("after a second refresh: held %d, want 3 (B2, E, G)", held)
	}
	if got, want := reported(tracked, classes), []blockID{{0x1000, 10}, {0x4000, 40}}; !slices.Equal(got, want) {
		t.Errorf("after a second refresh: reports %v, want %v", got, want)
	}
}

// TestRefreshMatchesRead: a set brought up to date holds what a fresh
// read holds, each block's leaked bit moved with it, whatever the order
// the tracer gives them in.
func TestRefreshMatchesRead(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var first []bpf.Block
	for i := range 5000 {
		first = append(first, bpf.Block{PID: 7, Addr: uint64(0x10000 + 64*i), Size: uint64(1 + i%48), TimestampNS: uint64(1 + i), StackID: uint64(i % 7)})
	}
	ft := &fakeTracer{blocks: first}
	s := forkSession(ft)
	tb, _, err := s.readTracked(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	leakedFirst := map[blockID]bool{}
	leaked := newBitset(len(first))
	for i := range first {
		if rng.IntN(2) == 0 {
			leaked.set(i)
			leakedFirst[tb.set.id(i)] = true
		}
	}
	fc := &firstCopy{tb: tb, leaked: leaked}

	// A tenth freed (some addresses handed out again), new blocks, and
	// the map's order mostly kept, partly shuffled.
	var second []bpf.Block
	for i, b := range first {
		switch rng.IntN(10) {
		case 0:
			continue
		case 1:
			b.TimestampNS = 1<<20 + uint64(i) // the address again, a new block
		}
		second = append(second, b)
	}
	for i := range 500 {
		second = append(second, bpf.Block{PID: 7, Addr: uint64(0x1000000 + 32*i), Size: 32, TimestampNS: 1<<20 + 10000 + uint64(i), StackID: 9})
	}
	for range 200 {
		i, j := rng.IntN(len(second)), rng.IntN(len(second))
		second[i], second[j] = second[j], second[i]
	}
	ft.blocks = second
	if _, err := s.refreshTracked(fc, 1<<21); err != nil {
		t.Fatal(err)
	}
	fresh, _, err := s.readTracked(1 << 21)
	if err != nil {
		t.Fatal(err)
	}
	got, want := records(&tb.set), records(&fresh.set)
	if !slices.Equal(got, want) {
		t.Fatalf("refreshed set differs from a fresh read: %d vs %d blocks", len(got), len(want))
	}
	for i := range tb.set.blocks {
		id := tb.set.id(i)
		if fc.leaked.has(i) != leakedFirst[id] {
			t.Fatalf("block %v: leaked bit %v, in the first copy %v", id, fc.leaked.has(i), leakedFirst[id])
		}
	}
}

// record is what a set says of a block, its tag as the stack it names.
// blockID names one allocation in the tests: an address handed out again
// is another.
type blockID struct{ addr, born uint64 }

// id names block i of t (born 0 where births are not kept).
func (t *trackedSet) id(i int) blockID {
	return blockID{addr: t.blocks[i].Addr, born: t.bornOf(i)}
}

type record struct {
	id          blockID
	size, stack uint64
	root        bool
}

func records(t *trackedSet) []record {
	var out []record
	for i, b := range t.blocks {
		out = append(out, record{t.id(i), b.Size, t.stacks[b.Tag].StackID, b.Root})
	}
	slices.SortFunc(out, func(x, y record) int { return compareBlockIDs(x.id, y.id) })
	return out
}

func ids(t *trackedSet) []blockID {
	var out []blockID
	for i := range t.blocks {
		out = append(out, t.id(i))
	}
	slices.SortFunc(out, compareBlockIDs)
	return out
}

func reported(t *trackedSet, classes []scanner.Class) []blockID {
	var out []blockID
	for i := range t.blocks {
		if isLeak(classes[i]) {
			out = append(out, t.id(i))
		}
	}
	slices.SortFunc(out, compareBlockIDs)
	return out
}

func compareBlockIDs(a, b blockID) int {
	if c := cmp.Compare(a.addr, b.addr); c != 0 {
		return c
	}
	return cmp.Compare(a.born, b.born)
}
