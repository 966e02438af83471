package inproc

import (
	"encoding/binary"
	"math/rand"
	"testing"
)

// TestBlockTable runs random inserts and deletes against a Go map.
func TestBlockTable(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	tab := newBlockTable()
	want := map[uint64]uint64{}
	for i := 0; i < 200000; i++ {
		addr := uint64(rng.Intn(5000)+1) * 16
		if rng.Intn(3) == 0 {
			tab.del(addr)
			delete(want, addr)
		} else {
			tab.put(addr, newLiveBlock(uint64(i), 0, 0, 0, 0))
			want[addr] = uint64(i)
		}
	}
	if tab.n != len(want) {
		t.Fatalf("%d blocks, want %d", tab.n, len(want))
	}
	for addr, size := range want {
		if b, ok := tab.get(addr); !ok || b.size() != size {
			t.Fatalf("block %#x: %v %v, want size %d", addr, b, ok, size)
		}
	}
	seen := 0
	tab.each(func(addr uint64, b liveBlock) {
		seen++
		if want[addr] != b.size() {
			t.Errorf("each: %#x size %d, want %d", addr, b.size(), want[addr])
		}
	})
	if seen != len(want) {
		t.Errorf("each saw %d, want %d", seen, len(want))
	}
}

type event struct {
	kind       byte
	addr, time uint64
}

// TestApplyOrder: one address allocated by one thread, freed by a
// second, allocated again by a third (their rings drained in any order)
// ends as the third's live block, whatever the order; a free whose
// allocation is read later cancels it.
func TestApplyOrder(t *testing.T) {
	seqs := [][]event{
		{{recAlloc, 0x1000, 1}, {recFree, 0x1000, 2}, {recAlloc, 0x1000, 3}},
		{{recAlloc, 0x1000, 3}, {recFree, 0x1000, 2}, {recAlloc, 0x1000, 1}},
		{{recFree, 0x1000, 2}, {recAlloc, 0x1000, 3}, {recAlloc, 0x1000, 1}},
		{{recFree, 0x1000, 2}, {recAlloc, 0x1000, 1}, {recAlloc, 0x1000, 3}},
		{{recAlloc, 0x1000, 1}, {recAlloc, 0x1000, 3}, {recFree, 0x1000, 2}},
	}
	for i, seq := range seqs {
		r := &Recorder{procs: map[int]*process{}, mem: make([]byte, recSize), opts: Options{MaxFreed: 8}, clock: &clock{}}
		for _, e := range seq {
			putRecord(r.mem, e)
			r.apply(0)
		}
		b, ok := r.procs[7].live.get(0x1000)
		if !ok || b.time != 3 || r.procs[7].live.n != 1 {
			t.Errorf("order %d: live %v %v (%d blocks), want the block of time 3", i, b, ok, r.procs[7].live.n)
		}
	}
	// Freed before its allocation was read: nothing lives.
	r := &Recorder{procs: map[int]*process{}, mem: make([]byte, recSize), opts: Options{MaxFreed: 8}, clock: &clock{}}
	for _, e := range []event{{recFree, 0x2000, 5}, {recAlloc, 0x2000, 4}} {
		putRecord(r.mem, e)
		r.apply(0)
	}
	if n := r.procs[7].live.n; n != 0 {
		t.Errorf("%d blocks live after a free read before its allocation", n)
	}
	// A program image's start read after a record of the image: that
	// block stays, an older one goes.
	for _, e := range []event{{recAlloc, 0x3000, 9}, {recAlloc, 0x4000, 2}, {recStart, 0, 6}, {recAlloc, 0x5000, 3}} {
		putRecord(r.mem, e)
		r.apply(0)
	}
	if _, ok := r.procs[7].live.get(0x3000); !ok || r.procs[7].live.n != 1 {
		t.Errorf("after an image start: %d blocks, want the one of time 9", r.procs[7].live.n)
	}
	r.dropTombs(5)
	if n := len(r.procs[7].tombs); n != 0 {
		t.Errorf("%d frees held after the watermark passed them", n)
	}
}

func putRecord(mem []byte, e event) {
	mem[rKind] = e.kind
	binary.LittleEndian.PutUint32(mem[rPID:], 7)
	binary.LittleEndian.PutUint64(mem[rAddr:], e.addr)
	binary.LittleEndian.PutUint64(mem[rSize:], 16)
	binary.LittleEndian.PutUint64(mem[rTime:], e.time)
}
