package unwind

import "sort"

// Marker frames end a stack the unwinder had to cut short; they are never
// user addresses. The BPF walker (bpf/unwind.h) stores the same values.
const (
	MarkNoTable    uint64 = 0xffffffffffff0010
	MarkExpression uint64 = 0xffffffffffff0020
	MarkRead       uint64 = 0xffffffffffff0030
	MarkDepth      uint64 = 0xffffffffffff0040
	MarkBadFrame   uint64 = 0xffffffffffff0050
	MarkStale      uint64 = 0xffffffffffff0060
)

// MaxDepth is the most frames a walk stores (the probe's MAX_STACK_DEPTH).
const MaxDepth = 64

// Mapping is one executable mapping of a process and its file's rows (nil:
// none, as for code without CFI).
type Mapping struct {
	Start, End, Bias uint64
	Table            *Table
}

// Regs is where a walk starts: PC is the return address into the caller of
// the allocator (the allocation's call site), SP and BP the caller's.
type Regs struct {
	PC, SP, BP uint64
}

// Walker walks a stack in user space the way the probe walks it in the
// kernel (bpf/unwind.h unwind_step): a stack the probe could not finish
// because a module's rows were not loaded yet is walked again here, from
// the registers and the copy of the stack it took, once they are.
type Walker struct {
	// Mappings are sorted by Start.
	Mappings []Mapping
	// FramePointers: frames in code without rows are stepped over by
	// their frame pointer (--unwind auto); otherwise the walk stops there.
	FramePointers bool
	// Word reads the stack word at addr.
	Word func(addr uint64) (uint64, bool)
}

// Walk returns the walk's program counters, innermost first, ending with a
// marker when the walk was cut short.
func (w *Walker) Walk(r Regs) []uint64 {
	s := walkState{Walker: w, pc: r.PC, sp: r.SP, bp: r.BP, isReturn: true}
	for !s.done {
		s.step()
	}
	return s.pcs
}

type walkState struct {
	*Walker
	pc, sp, bp uint64
	isReturn   bool
	pcs        []uint64
	done       bool
}

func (w *Walker) mapping(pc uint64) *Mapping {
	i := sort.Search(len(w.Mappings), func(i int) bool { return w.Mappings[i].End > pc })
	if i < len(w.Mappings) && w.Mappings[i].Start <= pc {
		return &w.Mappings[i]
	}
	return nil
}

// cut ends the stack with a marker, in place of the last frame when the
// stack is full.
func (s *walkState) cut(marker uint64) {
	if len(s.pcs) >= MaxDepth {
		s.pcs = s.pcs[:MaxDepth-1]
	}
	s.pcs = append(s.pcs, marker)
	s.done = true
}

func (s *walkState) step() {
	if len(s.pcs) >= MaxDepth {
		s.cut(MarkDepth)
		return
	}
	if s.pc == 0 {
		s.done = true
		return
	}
	pc := s.pc
	if s.isReturn {
		pc--
	}
	row := Row{Kind: KindNone}
	if m := s.mapping(pc); m != nil && m.Table != nil {
		// Rows hold 32-bit addresses (bpf/unwind.h unwind_find_row).
		if v := pc - m.Bias; v <= 0xffffffff {
			if r, ok := m.Table.RowAt(v); ok {
				row = r
			}
		}
	}
	s.pcs = append(s.pcs, s.pc)
	var cfa uint64
	switch row.Kind {
	case KindRSP:
		cfa = s.sp + uint64(row.CFAOffset)
	case KindRBP:
		cfa = s.bp + uint64(row.CFAOffset)
	case KindPLT:
		// The entry pushes its relocation index at offset 6 of each
		// 16-byte entry.
		cfa = s.sp + 8
		if s.pc&15 >= 11 {
			cfa += 8
		}
	case KindSignal:
		s.signalFrame()
		return
	case KindEnd:
		s.done = true
		return
	case KindExpression:
		s.cut(MarkExpression)
		return
	default:
		if s.FramePointers {
			s.framePointerStep()
		} else {
			s.cut(MarkNoTable)
		}
		return
	}
	if cfa <= s.sp && row.Kind == KindRBP {
		s.cut(MarkBadFrame)
		return
	}
	ra, ok := s.Word(cfa - 8)
	if !ok {
		s.cut(MarkRead)
		return
	}
	if row.RBPOffset8 != 0 {
		bp, ok := s.Word(cfa + uint64(int64(row.RBPOffset8)*8))
		if !ok {
			s.cut(MarkRead)
			return
		}
		s.bp = bp
	}
	s.sp, s.pc, s.isReturn = cfa, ra, true
}

// signalFrame continues with the registers the kernel saved in the
// ucontext at rsp (uc_mcontext at 40; in it rbp at 80, rsp at 120, rip at
// 128).
func (s *walkState) signalFrame() {
	at := s.sp + 40
	bp, ok1 := s.Word(at + 80)
	sp, ok2 := s.Word(at + 120)
	ip, ok3 := s.Word(at + 128)
	if !ok1 || !ok2 || !ok3 {
		s.cut(MarkRead)
		return
	}
	s.bp, s.sp, s.pc, s.isReturn = bp, sp, ip, false
}

// framePointerStep steps over a frame of code without rows by its frame
// pointer, only when the chain holds: the saved rbp moves up the stack and
// the return address lies in a known mapping.
func (s *walkState) framePointerStep() {
	bp := s.bp
	if bp == 0 { // the outermost frame of frame-pointer code
		s.done = true
		return
	}
	if bp < s.sp || bp&7 != 0 {
		s.cut(MarkBadFrame)
		return
	}
	savedBP, ok1 := s.Word(bp)
	ra, ok2 := s.Word(bp + 8)
	if !ok1 || !ok2 {
		s.cut(MarkRead)
		return
	}
	if savedBP != 0 && savedBP <= bp || s.mapping(ra-1) == nil {
		s.cut(MarkBadFrame)
		return
	}
	s.bp, s.pc, s.sp, s.isReturn = savedBP, ra, bp+16, true
}
