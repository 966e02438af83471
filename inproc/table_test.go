package inproc

import (
	"encoding/binary"
	"math/rand"
	"testing"
	"unsafe"

	"github.com/lsan-project/lsan/bpf"
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

// TestBlockTableMapped: a table large enough to live in mappings keeps
// every block through its growths, and drain hands each over once.
func TestBlockTableMapped(t *testing.T) {
	tab := newBlockTable()
	const n = 4 * mappedSlots
	for i := uint64(1); i <= n; i++ {
		tab.put(i*16, newLiveBlock(i, 0, 0, 0, 0))
	}
	for i := uint64(1); i <= n; i += 2 {
		tab.del(i * 16)
	}
	if tab.maps[0] == nil {
		t.Fatalf("a table of %d slots is not mapped", len(tab.keys))
	}
	if tab.n != n/2 {
		t.Fatalf("%d blocks, want %d", tab.n, n/2)
	}
	seen := map[uint64]bool{}
	tab.drain(func(addr uint64, b liveBlock) {
		if addr%32 != 0 || b.size() != addr/16 || seen[addr] {
			t.Fatalf("drain: block %#x of size %d (seen before: %v)", addr, b.size(), seen[addr])
		}
		seen[addr] = true
	})
	if len(seen) != n/2 {
		t.Errorf("drain saw %d blocks, want %d", len(seen), n/2)
	}
	if tab.keys != nil || tab.maps[0] != nil {
		t.Error("drain did not free the slots")
	}
}

type event struct {
	kind  byte
	addr  uint64
	gen   uint32
	image uint32
}

// TestApplyOrder: one address allocated by one thread, freed by a
// second, allocated again by a third (their rings drained in any order)
// ends as the third's live block, whatever the order; a free whose
// allocation is read later cancels it.
func TestApplyOrder(t *testing.T) {
	// Every order in which two threads' rings can be read: the block of
	// generation 3 lives, whatever came first.
	seqs := [][]event{
		{{recAlloc, 0x1000, 1, 1}, {recFree, 0x1000, 2, 1}, {recAlloc, 0x1000, 3, 1}},
		{{recAlloc, 0x1000, 3, 1}, {recFree, 0x1000, 2, 1}, {recAlloc, 0x1000, 1, 1}},
		{{recFree, 0x1000, 2, 1}, {recAlloc, 0x1000, 3, 1}, {recAlloc, 0x1000, 1, 1}},
		{{recFree, 0x1000, 2, 1}, {recAlloc, 0x1000, 1, 1}, {recAlloc, 0x1000, 3, 1}},
		{{recAlloc, 0x1000, 1, 1}, {recAlloc, 0x1000, 3, 1}, {recFree, 0x1000, 2, 1}},
		// Generations wrap.
		{{recAlloc, 0x1000, 3, 1}, {recFree, 0x1000, 0xffffffff, 1}, {recAlloc, 0x1000, 0xfffffffe, 1}},
	}
	for i, seq := range seqs {
		r := &Recorder{procs: map[int]*process{}, mem: make([]byte, recSize)}
		for _, e := range seq {
			putRecord(r.mem, e)
			r.apply((*rec)(unsafe.Pointer(&r.mem[0])))
		}
		b, ok := r.procs[7].live.get(0x1000)
		if !ok || b.gen != 3 || r.procs[7].live.n != 1 {
			t.Errorf("order %d: live %v %v (%d blocks), want the block of generation 3", i, b, ok, r.procs[7].live.n)
		}
	}
	// Freed before its allocation was read: nothing lives.
	r := &Recorder{procs: map[int]*process{}, mem: make([]byte, recSize)}
	for _, e := range []event{{recFree, 0x2000, 5, 1}, {recAlloc, 0x2000, 4, 1}} {
		putRecord(r.mem, e)
		r.apply((*rec)(unsafe.Pointer(&r.mem[0])))
	}
	if n := r.procs[7].live.n; n != 0 {
		t.Errorf("%d blocks live after a free read before its allocation", n)
	}
	// A new program image's record read before a late one of the image
	// before it: what the old image held goes, its late records too.
	for _, e := range []event{{recAlloc, 0x4000, 9, 1}, {recAlloc, 0x3000, 1, 2}, {recStart, 0, 0, 2}, {recAlloc, 0x5000, 10, 1}} {
		putRecord(r.mem, e)
		r.apply((*rec)(unsafe.Pointer(&r.mem[0])))
	}
	if _, ok := r.procs[7].live.get(0x3000); !ok || r.procs[7].live.n != 1 {
		t.Errorf("after an image start: %d blocks, want the new image's one", r.procs[7].live.n)
	}
	r.dropTombs(1)
	if n := len(r.procs[7].tombs); n != 0 {
		t.Errorf("%d frees held after a later complete pass", n)
	}
}

func putRecord(mem []byte, e event) {
	mem[rKind] = e.kind
	binary.LittleEndian.PutUint32(mem[rImage:], e.image)
	binary.LittleEndian.PutUint32(mem[rPID:], 7)
	binary.LittleEndian.PutUint32(mem[rGen:], e.gen)
	binary.LittleEndian.PutUint64(mem[rAddr:], e.addr)
	binary.LittleEndian.PutUint64(mem[rSize:], 16)
}

// TestRecordView: the Go view of a record has the C layout's offsets.
func TestRecordView(t *testing.T) {
	var x rec
	got := map[string]uintptr{"seq": unsafe.Offsetof(x.seq), "kind": unsafe.Offsetof(x.kind), "fn": unsafe.Offsetof(x.fn),
		"image": unsafe.Offsetof(x.image), "pid": unsafe.Offsetof(x.pid), "tid": unsafe.Offsetof(x.tid),
		"stack": unsafe.Offsetof(x.stack), "gen": unsafe.Offsetof(x.gen), "addr": unsafe.Offsetof(x.addr),
		"size": unsafe.Offsetof(x.size), "time": unsafe.Offsetof(x.time), "sizeof": unsafe.Sizeof(x)}
	want := map[string]uintptr{"seq": rSeq, "kind": rKind, "fn": rFn, "image": rImage, "pid": rPID, "tid": rTID,
		"stack": rStack, "gen": rGen, "addr": rAddr, "size": rSize, "time": rTime, "sizeof": recSize}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s at %d, want %d", k, got[k], v)
		}
	}
}

// TestDrainPairs: an allocation and the free of its block right after it
// in a ring leave nothing, counted; the same pair where an older block of
// the address is live frees that one too, as applying both one by one
// does; an allocation followed by another address's free is applied as
// usual.
func TestDrainPairs(t *testing.T) {
	r := &Recorder{procs: map[int]*process{}, mem: make([]byte, sharedSize)}
	base := ringsOff
	events := []event{
		{recAlloc, 0x1000, 1, 1}, {recFree, 0x1000, 2, 1}, // a pair: nothing
		{recAlloc, 0x2000, 1, 1},                          // 0x2000 lives, gen 1
		{recAlloc, 0x2000, 3, 1}, {recFree, 0x2000, 4, 1}, // replaces it, then frees it
		{recAlloc, 0x3000, 1, 1}, {recFree, 0x4000, 1, 1}, // not a pair: 0x3000 lives, a tomb for 0x4000
	}
	for i, e := range events {
		slot := r.mem[base+ringHeader+i*recSize:]
		putRecord(slot, e)
		binary.LittleEndian.PutUint32(slot[rSeq:], uint32(i+1))
	}
	*r.u64(base + ringReserve) = uint64(len(events))
	if n, complete := r.drainAtLeast(1); n != len(events) || !complete {
		t.Fatalf("drained %d (complete %v), want %d", n, complete, len(events))
	}
	p := r.procs[7]
	_, live3 := p.live.get(0x3000)
	if p.live.n != 1 || !live3 || r.allocs != 4 || r.frees != 3 {
		t.Errorf("%d live (0x3000: %v), %d allocs, %d frees; want 0x3000 alone, 4 and 3", p.live.n, live3, r.allocs, r.frees)
	}
}

// TestTake: the blocks Take hands over are the live set's, and the
// recorder holds nothing of the process after.
func TestTake(t *testing.T) {
	const pid = 0x7ffffff0 // above any pid_max: no such process
	r := &Recorder{procs: map[int]*process{}, mem: make([]byte, sharedSize)}
	for _, e := range []event{{recAlloc, 0x1000, 1, 1}, {recAlloc, 0x2000, 2, 1}, {recFree, 0x1000, 3, 1}, {recAlloc, 0x3000, 4, 1}} {
		putRecord(r.mem, e)
		binary.LittleEndian.PutUint32(r.mem[rPID:], pid)
		r.apply((*rec)(unsafe.Pointer(&r.mem[0])))
	}
	live := r.Take(pid)
	if live.Len() != 2 {
		t.Fatalf("Len %d, want 2", live.Len())
	}
	got := map[uint64]bool{}
	live.Each(func(b bpf.Block) {
		if b.PID != pid || b.Size != 16 {
			t.Errorf("block %+v, want pid %d and size 16", b, pid)
		}
		got[b.Addr] = true
	})
	if len(got) != 2 || !got[0x2000] || !got[0x3000] {
		t.Errorf("blocks %v, want 0x2000 and 0x3000", got)
	}
	if _, ok := r.procs[pid]; ok {
		t.Error("the process is still held after Take")
	}
	if bs, _ := r.Blocks(pid); len(bs) != 0 {
		t.Errorf("%d blocks after Take", len(bs))
	}
}

// TestImageOrder: a process's next program image may come 40,000 images
// (other processes' execs) after its last, and the counter wraps: newer
// is newer all the same, and what the old image held is gone.
func TestImageOrder(t *testing.T) {
	for _, c := range []struct{ old, new uint32 }{{5, 40005}, {0xfffffff0, 3}} {
		r := &Recorder{procs: map[int]*process{}, mem: make([]byte, recSize)}
		for _, e := range []event{{recAlloc, 0x8000, 1, c.old}, {recAlloc, 0x9000, 1, c.new}, {recAlloc, 0xa000, 2, c.old}} {
			putRecord(r.mem, e)
			r.apply((*rec)(unsafe.Pointer(&r.mem[0])))
		}
		_, ok := r.procs[7].live.get(0x9000)
		if !ok || r.procs[7].live.n != 1 || r.procs[7].image != c.new {
			t.Errorf("images %d then %d: %d blocks, image %d; want the new image's block alone", c.old, c.new, r.procs[7].live.n, r.procs[7].image)
		}
	}
}

// TestDrainReusedSlot: a ring's last slot that its thread is writing
// again (recWriting) is not read, and the pass is incomplete; once it
// holds an allocation, the drain claims it (its thread can no longer
// retract it) and applies it; a retracted last slot is claimed too (its
// thread can no longer write it again). The pairs a thread wrote over
// (ring.reused) count as allocations and frees.
func TestDrainReusedSlot(t *testing.T) {
	r := &Recorder{procs: map[int]*process{}, mem: make([]byte, sharedSize)}
	base := ringsOff
	slot := r.mem[base+ringHeader:]
	putRecord(slot, event{recWriting, 0x1000, 1, 1})
	binary.LittleEndian.PutUint32(slot[rSeq:], 1)
	*r.u64(base + ringReserve) = 1
	*r.u64(base + ringReused) = 5
	if n, complete := r.drainAtLeast(1); n != 0 || complete {
		t.Fatalf("drained %d (complete %v) of a slot being written, want 0, incomplete", n, complete)
	}
	slot[rKind] = recAlloc
	if n, complete := r.drainAtLeast(1); n != 1 || !complete {
		t.Fatalf("drained %d (complete %v), want 1, complete", n, complete)
	}
	if _, ok := r.procs[7].live.get(0x1000); !ok || slot[rClaimed] != recClaimed {
		t.Errorf("live %v, claimed %d: want the block live and its record claimed", ok, slot[rClaimed])
	}
	next := r.mem[base+ringHeader+recSize:]
	putRecord(next, event{recRetracted, 0x2000, 2, 1})
	binary.LittleEndian.PutUint32(next[rSeq:], 2)
	*r.u64(base + ringReserve) = 2
	if n, _ := r.drainAtLeast(1); n != 1 || next[rClaimed] != recClaimed {
		t.Errorf("drained %d, claimed %d: want the retracted record claimed", n, next[rClaimed])
	}
	if r.allocs != 7 || r.frees != 6 {
		t.Errorf("%d allocs, %d frees; want 7 and 6 (5 pairs written over)", r.allocs, r.frees)
	}
}

// TestEachBlock: EachBlock gives the blocks Blocks does, a part at a
// time, and stops with ErrLiveSetChanged when the live set changes
// between two parts.
func TestEachBlock(t *testing.T) {
	const pid = 0x7ffffff0 // above any pid_max: no such process
	r := &Recorder{procs: map[int]*process{}, mem: make([]byte, sharedSize)}
	const n = 3*eachPart + 5
	for i := range n {
		putRecord(r.mem, event{recAlloc, uint64(0x10000 + 64*i), 1, 1})
		binary.LittleEndian.PutUint32(r.mem[rPID:], pid)
		r.apply((*rec)(unsafe.Pointer(&r.mem[0])))
	}
	if got := r.ExpectedBlocks(); got != n {
		t.Errorf("ExpectedBlocks = %d, want %d", got, n)
	}
	want, _ := r.Blocks(pid)
	var got []bpf.Block
	if err := r.EachBlock(pid, func(b bpf.Block) { got = append(got, b) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != n || len(want) != n {
		t.Fatalf("EachBlock gave %d blocks, Blocks %d; want %d", len(got), len(want), n)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("block %d: %+v, Blocks gives %+v", i, got[i], want[i])
		}
	}
	changed := false
	err := r.EachBlock(pid, func(bpf.Block) {
		if !changed { // fn runs without the lock: the process "ran"
			changed = true
			r.procs[pid].live.del(0x10000)
		}
	})
	if err != ErrLiveSetChanged {
		t.Errorf("a change between parts: %v, want ErrLiveSetChanged", err)
	}
}
