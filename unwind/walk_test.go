package unwind

import (
	"encoding/binary"
	"slices"
	"testing"
)

// A module of three functions at 0x1000, 0x2000, 0x3000 (ELF addresses),
// mapped at 0x400000: f's frame is 0x20 bytes above rsp (CFA rsp+0x28),
// g keeps rbp (CFA rbp+16, rbp saved at CFA-16), h is the outermost.
var testTable = &Table{Rows: []Row{
	{PC: 0x1000, Kind: KindRSP, CFAOffset: 0x28},
	{PC: 0x1100, Kind: KindNone},
	{PC: 0x2000, Kind: KindRBP, CFAOffset: 16, RBPOffset8: -2},
	{PC: 0x2100, Kind: KindNone},
	{PC: 0x3000, Kind: KindEnd},
	{PC: 0x3100, Kind: KindNone},
}}

const testBias = 0x400000 - 0x0

type testStack struct {
	base  uint64
	bytes []byte
}

func (s *testStack) put(addr, v uint64) {
	binary.LittleEndian.PutUint64(s.bytes[addr-s.base:], v)
}

func (s *testStack) word(addr uint64) (uint64, bool) {
	if addr < s.base || addr-s.base+8 > uint64(len(s.bytes)) {
		return 0, false
	}
	return binary.LittleEndian.Uint64(s.bytes[addr-s.base:]), true
}

// TestWalkerRows: a walk from a call site in f through g (rbp-based) to h
// (the end) gives the three return addresses; without f's rows it stops
// with the marker of its mode.
func TestWalkerRows(t *testing.T) {
	st := &testStack{base: 0x7000, bytes: make([]byte, 0x200)}
	// f at its call site: rsp 0x7000, its return address into g at CFA-8.
	st.put(0x7000+0x28-8, 0x400000+0x2010)
	// g: rbp = 0x7100; CFA = 0x7110, return address into h at 0x7108,
	// the caller's rbp saved at CFA-16 = 0x7100.
	st.put(0x7108, 0x400000+0x3010)
	st.put(0x7100, 0)
	w := &Walker{Mappings: []Mapping{{Start: 0x400000, End: 0x404000, Bias: testBias, Table: testTable}}, Word: st.word}
	got := w.Walk(Regs{PC: 0x400000 + 0x1010, SP: 0x7000, BP: 0x7100})
	want := []uint64{0x401010, 0x402010, 0x403010}
	if !slices.Equal(got, want) {
		t.Errorf("walk %x, want %x", got, want)
	}
	// f's pc in no row: cfi mode stops there, auto mode tries rbp.
	w.Mappings[0].Table = &Table{Rows: testTable.Rows[2:]}
	if got := w.Walk(Regs{PC: 0x401010, SP: 0x7000, BP: 0x7100}); !slices.Equal(got, []uint64{0x401010, MarkNoTable}) {
		t.Errorf("cfi walk without f's rows %x", got)
	}
	w.FramePointers = true
	if got := w.Walk(Regs{PC: 0x401010, SP: 0x7000, BP: 3}); !slices.Equal(got, []uint64{0x401010, MarkBadFrame}) {
		t.Errorf("auto walk with a bad rbp %x", got)
	}
}

// FuzzWalker: whatever the stack holds (the copy the probe sent), a walk
// ends and stores at most MaxDepth frames, the last of a full one a
// marker.
func FuzzWalker(f *testing.F) {
	f.Add([]byte{}, uint64(0x401010), uint64(0x7000), uint64(0x7100), true)
	f.Add(make([]byte, 512), uint64(0x402010), uint64(0x7008), uint64(0x7000), false)
	f.Fuzz(func(t *testing.T, data []byte, pc, sp, bp uint64, fp bool) {
		st := &testStack{base: sp &^ 4095, bytes: data}
		w := &Walker{Mappings: []Mapping{{Start: 0x400000, End: 0x404000, Bias: testBias, Table: testTable}, {Start: 0x500000, End: 0x501000}}, Word: st.word, FramePointers: fp}
		got := w.Walk(Regs{PC: pc, SP: sp, BP: bp})
		if len(got) > MaxDepth {
			t.Fatalf("%d frames", len(got))
		}
		if len(got) == MaxDepth && got[MaxDepth-1] != MarkDepth && got[MaxDepth-1]&^0xff0 != 0xffffffffffff0000 {
			t.Fatalf("a full stack ending with %x, not a marker", got[MaxDepth-1])
		}
	})
}
