package session

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/lsan-project/lsan/bpf"
	"github.com/lsan-project/lsan/scanner"
)

// TestPackedAddrs: a packed set holds exactly its addresses, dense (a
// heap's, 48 bytes apart) or sparse (gaps up to 2^47), at every group
// boundary.
func TestPackedAddrs(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct {
		n   int
		gap func() uint64
	}{
		{0, nil},
		{1, func() uint64 { return 16 }},
		{packGroup, func() uint64 { return 48 }},
		{packGroup + 1, func() uint64 { return 48 }},
		{5000, func() uint64 { return 16 * (1 + rng.Uint64N(4)) }},
		{3000, func() uint64 { return 8 + rng.Uint64N(1<<47) }},
	} {
		in := map[uint64]bool{}
		var addrs []uint64
		a := uint64(0x5555_0000_0000)
		for range c.n {
			a += c.gap()
			addrs = append(addrs, a)
			in[a] = true
		}
		shuffled := slices.Clone(addrs)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		p := packAddrs(append(shuffled, shuffled...)) // duplicates count once
		if p.len() != c.n {
			t.Errorf("%d addresses: packed %d", c.n, p.len())
		}
		for _, a := range addrs {
			for _, probe := range []uint64{a - 8, a, a + 8} {
				if p.has(probe) != in[probe] {
					t.Fatalf("%d addresses: has(%#x) = %v, want %v", c.n, probe, !in[probe], in[probe])
				}
			}
		}
		if p.has(0) || p.has(^uint64(0)) {
			t.Errorf("%d addresses: holds 0 or the top address", c.n)
		}
	}
}

// TestPeriodicConfirmation follows two fork checks of lsan -p: the first
// finds A and B leaked and holds them back; before the second, B is freed
// and its address handed out again (B2), and C, leaked too, is allocated.
// The second, finding every block unreferenced, reports A alone: B2 at
// B's address is a new block, and C was not seen leaked before.
func TestPeriodicConfirmation(t *testing.T) {
	a := bpf.Block{PID: 7, Addr: 0x1000, Size: 32, TimestampNS: 10, StackID: 1}
	b := bpf.Block{PID: 7, Addr: 0x2000, Size: 32, TimestampNS: 20, StackID: 1}
	b2 := bpf.Block{PID: 7, Addr: 0x2000, Size: 32, TimestampNS: 150, StackID: 1}
	c := bpf.Block{PID: 7, Addr: 0x3000, Size: 32, TimestampNS: 160, StackID: 2}
	ft := &fakeTracer{blocks: []bpf.Block{a, b}}
	s := forkSession(ft)

	tb, _, err := s.readTracked(100)
	if err != nil {
		t.Fatal(err)
	}
	classes := []scanner.Class{scanner.Direct, scanner.Indirect}
	if held, _ := s.confirmLeaks(tb.done(), classes, true, false); held != 2 {
		t.Fatalf("first check held %d, want 2 (nothing confirms them yet)", held)
	}

	ft.blocks = []bpf.Block{c, b2, a}
	tb, _, err = s.readTracked(200)
	if err != nil {
		t.Fatal(err)
	}
	tracked := tb.done()
	classes = slices.Repeat([]scanner.Class{scanner.Direct}, len(tracked.blocks))
	held, _ := s.confirmLeaks(tracked, classes, true, false)
	if got, want := reported(tracked, classes), []blockID{{0x1000, 10}}; held != 2 || !slices.Equal(got, want) {
		t.Errorf("second check reports %v (held %d), want %v (B2 and C held)", got, held, want)
	}
	// What the second found is the third's to confirm: all three.
	for _, blk := range []bpf.Block{a, b2, c} {
		if !s.leakedBefore.has(blk.Addr, blk.TimestampNS) {
			t.Errorf("block at %#x born %d not kept for the next check", blk.Addr, blk.TimestampNS)
		}
	}
	if s.leakedBefore.has(0x2000, 250) {
		t.Error("a block born after the second check's copy counts as leaked in it")
	}
}
