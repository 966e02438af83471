package inproc

import (
	"encoding/binary"
	"errors"
	"testing"
	"unsafe"

	"github.com/lsan-project/lsan/bpf"
)

const lendPID = 0x7ffffff0 // above any pid_max: no such process

// fullRecord is a record with every field a live block keeps.
type fullRecord struct {
	kind          uint8
	addr, size    uint64
	gen, image    uint32
	fn            uint8
	stack, msBorn uint32
}

func applyFull(r *Recorder, e fullRecord) {
	m := r.mem
	putRecord(m, event{e.kind, e.addr, e.gen, e.image})
	binary.LittleEndian.PutUint32(m[rPID:], lendPID)
	m[rFn] = e.fn
	binary.LittleEndian.PutUint64(m[rSize:], e.size)
	binary.LittleEndian.PutUint32(m[rStack:], e.stack)
	binary.LittleEndian.PutUint32(m[rTime:], e.msBorn)
	r.apply((*rec)(unsafe.Pointer(&m[0])))
}

func blocksByAddr(t *testing.T, r *Recorder) map[uint64]bpf.Block {
	t.Helper()
	bs, err := r.Blocks(lendPID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]bpf.Block{}
	for _, b := range bs {
		out[b.Addr] = b
	}
	return out
}

// roundLikeLSan is what a check does to the sizes it is lent.
func roundLikeLSan(b bpf.Block, table []bpf.AllocatorFunc) bpf.Block {
	switch name := table[b.Fn].Name; {
	case name == "pvalloc":
		b.Size = max((b.Size+4095)&^4095, 4096)
	case name != "realloc":
		b.Size = max(b.Size, 1)
	}
	return b
}

// TestLendRestore: a live set lent to a check and handed back is what it
// was, every field of every block, with sizes the check rounded; the
// records read meanwhile apply as if it had never been lent: a lent block
// freed, or whose address was handed out again, or ended by an
// allocation and free of one thread (a pair, or a retracted record), is
// gone, one a late free of an older block at its address ended is not,
// a new block is there.
func TestLendRestore(t *testing.T) {
	r := &Recorder{procs: map[int]*process{}, mem: make([]byte, sharedSize)}
	r.SetFuncs(bpf.AllocatorFuncs)
	const n = 2*drainPart + 300 // several parts of kept entries returned
	fnMalloc, fnCalloc, fnPv := uint8(0), uint8(2), fnPvalloc
	for i := range n {
		e := fullRecord{kind: recAlloc, addr: uint64(0x100000 + 64*i), size: uint64(8 + i%40), gen: 10, image: 1,
			fn: fnMalloc, stack: uint32(1 + i%7), msBorn: uint32(i)}
		switch i % 1000 {
		case 1:
			e.size = 0 // malloc(0): the check counts one byte
		case 2:
			e.fn, e.size = fnPv, 5000 // pvalloc: the check counts two pages
		case 3:
			e.fn = fnCalloc
		}
		applyFull(r, e)
	}
	want := blocksByAddr(t, r)
	if len(want) != n {
		t.Fatalf("%d blocks, want %d", len(want), n)
	}

	l := r.Lend(lendPID)
	if l == nil || l.Len() != n {
		t.Fatalf("lent %v blocks, want %d", l, n)
	}
	if _, err := r.Blocks(lendPID); !errors.Is(err, ErrLent) {
		t.Errorf("Blocks of a lent set: %v, want ErrLent", err)
	}
	var set []bpf.Block
	l.Each(func(b bpf.Block) { set = append(set, roundLikeLSan(b, bpf.AllocatorFuncs)) })
	if len(set) != n {
		t.Fatalf("Each gave %d blocks, want %d", len(set), n)
	}

	// The process runs while the check reports.
	addr := func(i int) uint64 { return uint64(0x100000 + 64*i) }
	applyFull(r, fullRecord{kind: recFree, addr: addr(5), gen: 11, image: 1})
	delete(want, addr(5))
	applyFull(r, fullRecord{kind: recFree, addr: addr(6), gen: 11, image: 1})
	applyFull(r, fullRecord{kind: recAlloc, addr: addr(6), size: 99, gen: 12, image: 1, stack: 3, msBorn: 7777})
	want[addr(6)] = bpf.Block{PID: lendPID, Addr: addr(6), Size: 99, StackID: 3, Fn: 0, TimestampNS: 7777 * 1e6}
	applyFull(r, fullRecord{kind: recFree, addr: addr(7), gen: 9, image: 1}) // late: an older block's
	applyFull(r, fullRecord{kind: recRetracted, addr: addr(8), gen: 11, image: 1})
	delete(want, addr(8))
	applyFull(r, fullRecord{kind: recAlloc, addr: 0x9000, size: 5, gen: 1, image: 1, stack: 2, msBorn: 8888})
	want[0x9000] = bpf.Block{PID: lendPID, Addr: 0x9000, Size: 5, StackID: 2, TimestampNS: 8888 * 1e6}
	// A pair in one ring at a lent block's address (its free read
	// earlier in another ring, or not at all) ends that block too.
	ring := ringsOff
	for i, e := range []event{{recAlloc, addr(9), 12, 1}, {recFree, addr(9), 13, 1}} {
		slot := r.mem[ring+ringHeader+i*recSize:]
		putRecord(slot, e)
		binary.LittleEndian.PutUint32(slot[rPID:], lendPID)
		binary.LittleEndian.PutUint32(slot[rSeq:], uint32(i+1))
	}
	*r.u64(ring + ringReserve) = 2
	r.drainAtLeast(1)
	delete(want, addr(9))

	l.Restore(func(i int) bpf.Block { return set[i] })
	got := blocksByAddr(t, r)
	if len(got) != len(want) {
		t.Errorf("%d blocks after Restore, want %d", len(got), len(want))
	}
	for a, w := range want {
		w.TimestampNS += r.start
		if g, ok := got[a]; !ok || g != w {
			t.Fatalf("block %#x after Restore: %+v (%v), want %+v", a, g, ok, w)
		}
	}
}

// TestLendForgotten: a process whose program image changed while its set
// was lent (an execve) holds the new image's blocks alone after Restore.
func TestLendForgotten(t *testing.T) {
	r := &Recorder{procs: map[int]*process{}, mem: make([]byte, sharedSize)}
	r.SetFuncs(bpf.AllocatorFuncs)
	applyFull(r, fullRecord{kind: recAlloc, addr: 0x1000, size: 16, gen: 1, image: 1})
	l := r.Lend(lendPID)
	var set []bpf.Block
	l.Each(func(b bpf.Block) { set = append(set, b) })
	applyFull(r, fullRecord{kind: recStart, image: 2})
	applyFull(r, fullRecord{kind: recAlloc, addr: 0x2000, size: 16, gen: 1, image: 2})
	l.Restore(func(i int) bpf.Block { return set[i] })
	got := blocksByAddr(t, r)
	if _, ok := got[0x2000]; !ok || len(got) != 1 {
		t.Errorf("blocks %v after an execve while lent, want 0x2000 alone", got)
	}
}
