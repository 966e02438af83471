package unwind

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	"github.com/go-delve/delve/pkg/dwarf/frame"
)

// Kind says how the BPF walker finds the caller's frame from a row. The
// values are shared with bpf/unwind.h.
type Kind uint8

const (
	// KindNone: no CFI covers the address (a gap between functions, or
	// code without tables); the walker falls back to frame pointers in
	// auto mode and stops with a marker in cfi mode.
	KindNone Kind = 0
	// KindRSP: CFA = rsp + CFAOffset.
	KindRSP Kind = 1
	// KindRBP: CFA = rbp + CFAOffset.
	KindRBP Kind = 2
	// KindPLT: a 16-byte .plt entry: CFA = rsp + 8, or rsp + 16 once
	// the entry has pushed its relocation index (pc & 15 >= 11).
	KindPLT Kind = 3
	// KindExpression: the rule is a DWARF expression the walker cannot
	// evaluate; it stops there with a marker.
	KindExpression Kind = 4
	// KindSignal: a signal trampoline (__restore_rt); the interrupted
	// registers are in the ucontext at rsp.
	KindSignal Kind = 5
	// KindEnd: the return address is undefined: the outermost frame
	// (_start, a thread's start), where a stack ends complete.
	KindEnd Kind = 6
)

var kindNames = [...]string{"none", "rsp", "rbp", "plt", "expression", "signal", "end"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Row is one unwind rule, in effect from PC up to the next row's PC. It is
// laid out as the BPF side reads it (8 bytes).
type Row struct {
	// PC is the ELF virtual address where the rule starts.
	PC uint32
	// CFAOffset is added to rsp or rbp (Kind) to get the CFA.
	CFAOffset uint16
	Kind      Kind
	// RBPOffset8 says where the caller's rbp was saved: at CFA +
	// 8*RBPOffset8; 0 means rbp is unchanged.
	RBPOffset8 int8
}

// Table is the unwind table of one file.
type Table struct {
	Rows []Row
	// FDEs is how many frame description entries were read.
	FDEs int
	// Expressions counts the rows marked KindExpression.
	Expressions int
	// Sources names the sections read (".eh_frame", ".debug_frame").
	Sources []string
}

// RowAt returns the row in effect at ELF virtual address pc.
func (t *Table) RowAt(pc uint64) (Row, bool) {
	i := sort.Search(len(t.Rows), func(i int) bool { return uint64(t.Rows[i].PC) > pc })
	if i == 0 {
		return Row{}, false
	}
	return t.Rows[i-1], true
}

// DWARF register numbers on x86-64.
const (
	regRBP = 6
	regRSP = 7
	regRA  = 16
)

// Open builds the table of the ELF file at path.
func Open(path string) (*Table, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("unwind tables of %s: %w", path, err)
	}
	defer f.Close()
	t, err := Build(f)
	if err != nil {
		return nil, fmt.Errorf("unwind tables of %s: %w", path, err)
	}
	return t, nil
}

// Build reads the CFI of f and compiles it into rows. A file without CFI
// gives an empty table, not an error.
func Build(f *elf.File) (t *Table, err error) {
	if f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("unwinding %s code is not supported", f.Machine)
	}
	// delve's parser panics on some malformed input: a bad file is an
	// error, never a crash.
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, fmt.Errorf("malformed call frame information: %v", r)
		}
	}()
	t = &Table{}
	fdes, err := readFDEs(f, t)
	if err != nil {
		return nil, err
	}
	t.FDEs = len(fdes)
	rows := make([]Row, 0, len(fdes)*4)
	for i, fde := range fdes {
		rows = appendFDERows(rows, fde)
		end := fde.End()
		if i+1 == len(fdes) || fdes[i+1].Begin() > end {
			if end <= 0xffffffff {
				rows = append(rows, Row{PC: uint32(end), Kind: KindNone})
			}
		}
	}
	rows = applyPLT(f, rows)
	t.Rows = rows
	for _, r := range rows {
		if r.Kind == KindExpression {
			t.Expressions++
		}
	}
	return t, nil
}

// readFDEs parses .eh_frame, then .debug_frame for what .eh_frame does not
// cover, and returns the FDEs sorted by start, without overlaps.
func readFDEs(f *elf.File, t *Table) ([]*frame.FrameDescriptionEntry, error) {
	var all []*frame.FrameDescriptionEntry
	if s := f.Section(".eh_frame"); s != nil && s.Type != elf.SHT_NOBITS && s.Addr != 0 {
		data, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("read .eh_frame: %w", err)
		}
		fdes, err := frame.Parse(data, binary.LittleEndian, 0, 8, s.Addr)
		if err != nil {
			return nil, fmt.Errorf("parse .eh_frame: %w", err)
		}
		all = append(all, fdes...)
		t.Sources = append(t.Sources, ".eh_frame")
	}
	if s := f.Section(".debug_frame"); s != nil && s.Type != elf.SHT_NOBITS {
		data, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("read .debug_frame: %w", err)
		}
		fdes, err := frame.Parse(data, binary.LittleEndian, 0, 8, 0)
		if err != nil {
			return nil, fmt.Errorf("parse .debug_frame: %w", err)
		}
		all = append(all, fdes...)
		t.Sources = append(t.Sources, ".debug_frame")
	}
	// A stable sort keeps .eh_frame's FDE first where both cover a
	// function; the overlapping later one is dropped.
	sort.SliceStable(all, func(i, j int) bool { return all[i].Begin() < all[j].Begin() })
	out := all[:0]
	var covered uint64
	for _, fde := range all {
		if fde.End() <= fde.Begin() || fde.End() > 0xffffffff || fde.Begin() < covered {
			continue
		}
		out = append(out, fde)
		covered = fde.End()
	}
	return out, nil
}

// appendFDERows evaluates the FDE at each place its rule can change and
// appends one row per change.
func appendFDERows(rows []Row, fde *frame.FrameDescriptionEntry) []Row {
	signal := strings.Contains(fde.CIE.Augmentation, "S")
	starts, ok := rowStarts(fde)
	if !ok {
		// An opcode the scan does not know: every address is a possible
		// start (delve still evaluates each).
		starts = starts[:0]
		for pc := fde.Begin(); pc < fde.End() && pc-fde.Begin() < 1<<16; pc++ {
			starts = append(starts, pc)
		}
	}
	for _, pc := range starts {
		if pc >= fde.End() {
			break
		}
		var r Row
		ctx, err := fde.EstablishFrame(pc)
		switch {
		case signal:
			r = Row{Kind: KindSignal}
		case err != nil:
			r = Row{Kind: KindExpression}
		default:
			r = compileRow(ctx)
		}
		r.PC = uint32(pc)
		if n := len(rows); n > 0 && sameRule(rows[n-1], r) {
			continue
		}
		rows = append(rows, r)
	}
	return rows
}

func sameRule(a, b Row) bool {
	return a.Kind == b.Kind && a.CFAOffset == b.CFAOffset && a.RBPOffset8 == b.RBPOffset8
}

// compileRow reduces delve's row to what the BPF walker evaluates.
func compileRow(ctx *frame.FrameContext) Row {
	ra, ok := ctx.Regs[regRA]
	if ok && ra.Rule == frame.RuleUndefined {
		return Row{Kind: KindEnd}
	}
	if !ok || ra.Rule != frame.RuleOffset || ra.Offset != -8 {
		return Row{Kind: KindExpression}
	}
	var r Row
	switch {
	case ctx.CFA.Rule != frame.RuleCFA:
		return Row{Kind: KindExpression}
	case ctx.CFA.Reg == regRSP:
		r.Kind = KindRSP
	case ctx.CFA.Reg == regRBP:
		r.Kind = KindRBP
	default:
		return Row{Kind: KindExpression}
	}
	if ctx.CFA.Offset < 0 || ctx.CFA.Offset > 0xffff {
		return Row{Kind: KindExpression}
	}
	r.CFAOffset = uint16(ctx.CFA.Offset)
	if bp, ok := ctx.Regs[regRBP]; ok {
		switch bp.Rule {
		case frame.RuleUndefined, frame.RuleSameVal:
			// unchanged (DW_CFA_restore of rbp lands on undefined in delve)
		case frame.RuleOffset:
			if bp.Offset%8 != 0 || bp.Offset/8 < -128 || bp.Offset/8 > 127 || bp.Offset == 0 {
				return Row{Kind: KindExpression}
			}
			r.RBPOffset8 = int8(bp.Offset / 8)
		default:
			return Row{Kind: KindExpression}
		}
	}
	return r
}

// applyPLT gives the PLT sections their known rules: .eh_frame describes
// .plt with a DWARF expression, and linkers often leave .plt.got and
// .plt.sec without any CFI.
func applyPLT(f *elf.File, rows []Row) []Row {
	for _, s := range f.Sections {
		var r Row
		switch s.Name {
		case ".plt":
			r = Row{Kind: KindPLT, CFAOffset: 8}
		case ".plt.got", ".plt.sec":
			r = Row{Kind: KindRSP, CFAOffset: 8}
		default:
			continue
		}
		if s.Addr == 0 || s.Size == 0 || s.Addr+s.Size > 0xffffffff {
			continue
		}
		rows = override(rows, uint32(s.Addr), uint32(s.Addr+s.Size), r)
	}
	return rows
}

// override replaces the rows in [start, end) by r, keeping the rule in
// effect at end.
func override(rows []Row, start, end uint32, r Row) []Row {
	after := Row{PC: end, Kind: KindNone}
	for _, x := range rows {
		if x.PC <= end {
			after = x
			after.PC = end
		}
	}
	out := make([]Row, 0, len(rows)+2)
	for _, x := range rows {
		if x.PC < start || x.PC > end {
			out = append(out, x)
		}
	}
	r.PC = start
	out = append(out, r, after)
	sort.SliceStable(out, func(i, j int) bool { return out[i].PC < out[j].PC })
	return out
}
