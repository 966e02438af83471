package symbolize

import (
	"fmt"
	"sort"
	"strings"
)

// Line-number program opcodes (DWARF 5, section 6.2.5).
const (
	lnsCopy             = 1
	lnsAdvancePC        = 2
	lnsAdvanceLine      = 3
	lnsSetFile          = 4
	lnsSetColumn        = 5
	lnsNegateStmt       = 6
	lnsSetBasicBlock    = 7
	lnsConstAddPC       = 8
	lnsFixedAdvancePC   = 9
	lnsSetPrologueEnd   = 10
	lnsSetEpilogueBegin = 11
	lnsSetISA           = 12
	lneEndSequence      = 1
	lneSetAddress       = 2
	lneDefineFile       = 3
	lneSetDiscriminator = 4
	lnctPath            = 1
	lnctDirectoryIndex  = 2
	maxLineTableEntries = 1 << 20 // directories or files in one header
)

// lineRow is one row of a line table, reduced to what a frame shows.
type lineRow struct {
	addr uint64
	file uint32 // index into lineTable.files
	line uint32
	col  uint32
}

// lineSeq is one sequence of rows: contiguous code [lo, hi).
type lineSeq struct {
	lo, hi uint64
	rows   []lineRow // address order; the end_sequence row is not kept
}

// lineTable is the decoded line program of one unit.
type lineTable struct {
	files []string // full paths, by the file index rows and DW_AT_call_file use
	seqs  []lineSeq
	maxHi []uint64 // maxHi[i] = max(seqs[0..i].hi), for overlapping sequences
}

// lineHeader is the part of a line program header the decoder needs.
type lineHeader struct {
	version     uint16
	minInstLen  uint8
	defaultStmt bool
	lineBase    int8
	lineRange   uint8
	opcodeBase  uint8
	stdLens     []uint8
	programEnd  uint64
}

// parseLineTable decodes the line program of u.
func (d *dwarfData) parseLineTable(u *unit) (*lineTable, error) {
	if !u.hasStmtList {
		return &lineTable{}, nil
	}
	b := newDbuf(d.sec.line, u.stmtList, d.order)
	h, files, err := d.parseLineHeader(u, &b)
	if err != nil {
		return nil, fmt.Errorf("line table at %#x: %w", u.stmtList, err)
	}
	t := &lineTable{files: files}
	b.data = b.data[:h.programEnd]
	t.runProgram(&b, h)
	t.index()
	return t, nil
}

// parseLineHeader parses a version 2-5 line program header and resolves
// the file table into full paths.
func (d *dwarfData) parseLineHeader(u *unit, b *dbuf) (*lineHeader, []string, error) {
	h := &lineHeader{}
	length := uint64(b.u32())
	offSize := uint8(4)
	if length == 0xffffffff {
		length = b.u64()
		offSize = 8
	}
	if b.err || length > uint64(len(b.data))-b.off {
		return nil, nil, fmt.Errorf("truncated")
	}
	h.programEnd = b.off + length
	h.version = b.u16()
	if h.version < 2 || h.version > 5 {
		return nil, nil, fmt.Errorf("unsupported version %d", h.version)
	}
	if h.version >= 5 {
		b.u8() // address_size
		b.u8() // segment_selector_size
	}
	headerLen := b.sized(offSize)
	if headerLen > h.programEnd-min(b.off, h.programEnd) {
		return nil, nil, fmt.Errorf("header length %#x beyond the table", headerLen)
	}
	programStart := b.off + headerLen
	h.minInstLen = b.u8()
	if h.version >= 4 {
		b.u8() // maximum_operations_per_instruction: VLIW only
	}
	h.defaultStmt = b.u8() != 0
	h.lineBase = int8(b.u8())
	h.lineRange = b.u8()
	h.opcodeBase = b.u8()
	if h.opcodeBase > 0 {
		h.stdLens = b.take(uint64(h.opcodeBase - 1))
	}
	if b.err {
		return nil, nil, fmt.Errorf("truncated header")
	}
	if h.lineRange == 0 {
		return nil, nil, fmt.Errorf("line_range is 0")
	}
	var files []string
	var err error
	if h.version >= 5 {
		files, err = d.lineFiles5(u, b, offSize)
	} else {
		files = lineFiles4(b, u.compDir)
	}
	if err != nil {
		return nil, nil, err
	}
	b.off = programStart
	return h, files, nil
}

// lineFiles4 reads the include_directories and file_names of a version
// 2-4 header. File indexes start at 1 there; index 0 is left empty.
func lineFiles4(b *dbuf, compDir string) []string {
	var dirs []string
	for range maxLineTableEntries {
		s := b.cstr()
		if len(s) == 0 || b.err {
			break
		}
		dirs = append(dirs, string(s))
	}
	files := []string{""}
	for range maxLineTableEntries {
		name := b.cstr()
		if len(name) == 0 || b.err {
			break
		}
		dirIdx := b.uleb()
		b.uleb() // mtime
		b.uleb() // length
		files = append(files, fileName4(compDir, dirs, string(name), dirIdx))
	}
	return files
}

func fileName4(compDir string, dirs []string, name string, dirIdx uint64) string {
	dir := ""
	if dirIdx > 0 && dirIdx <= uint64(len(dirs)) {
		dir = dirs[dirIdx-1]
	}
	return joinSourcePath(compDir, dir, name)
}

// joinSourcePath builds the path llvm-symbolizer and addr2line print: the
// file name, under its directory, under the compilation directory when the
// directory is relative. Nothing is cleaned ("./a/./b.c" stays), as they
// do not clean either.
func joinSourcePath(compDir, dir, name string) string {
	if strings.HasPrefix(name, "/") {
		return name
	}
	switch {
	case dir == "":
		dir = compDir
	case !strings.HasPrefix(dir, "/") && compDir != "":
		dir = joinDir(compDir, dir)
	}
	if dir == "" {
		return name
	}
	return joinDir(dir, name)
}

func joinDir(dir, name string) string {
	if strings.HasSuffix(dir, "/") {
		return dir + name
	}
	return dir + "/" + name
}

// entryFormat is one (content type, form) pair of a version 5 header.
type entryFormat struct{ content, form uint64 }

// lineFiles5 reads the directory and file name tables of a version 5
// header, whose entries are self-described by (content type, form) lists.
func (d *dwarfData) lineFiles5(u *unit, b *dbuf, offSize uint8) ([]string, error) {
	// Strings in the header are offsets of the line table's own format,
	// which may differ from the unit's in principle.
	hu := *u
	hu.offSize = offSize
	dirs, err := d.lineEntries5(&hu, b, func(path string, _ uint64) string { return path })
	if err != nil {
		return nil, fmt.Errorf("directory table: %w", err)
	}
	files, err := d.lineEntries5(&hu, b, func(path string, dirIdx uint64) string {
		dir := ""
		if dirIdx < uint64(len(dirs)) {
			dir = dirs[dirIdx]
		}
		return joinSourcePath(u.compDir, dir, path)
	})
	if err != nil {
		return nil, fmt.Errorf("file table: %w", err)
	}
	return files, nil
}

func (d *dwarfData) lineEntries5(u *unit, b *dbuf, build func(path string, dirIdx uint64) string) ([]string, error) {
	nfmt := b.u8()
	formats := make([]entryFormat, 0, nfmt)
	for range nfmt {
		formats = append(formats, entryFormat{b.uleb(), b.uleb()})
	}
	count := b.uleb()
	if b.err || count > maxLineTableEntries {
		return nil, fmt.Errorf("truncated or %d entries", count)
	}
	out := make([]string, 0, count)
	for range count {
		var path string
		var dirIdx uint64
		for _, f := range formats {
			v := d.readForm(u, b, f.form, 0)
			switch f.content {
			case lnctPath:
				if v.form == formString {
					// An inline string here lives in .debug_line, not in
					// .debug_info where d.str looks for DW_FORM_string.
					path = cstrAt(b.data, v.val)
				} else {
					path = d.str(u, v)
				}
			case lnctDirectoryIndex:
				dirIdx = v.val
			}
		}
		if b.err {
			return nil, fmt.Errorf("truncated entry")
		}
		out = append(out, build(path, dirIdx))
	}
	return out, nil
}

// lineState is the line-number state machine's registers.
type lineState struct {
	addr   uint64
	file   uint64
	line   int64
	col    uint64
	isStmt bool
}

func (h *lineHeader) initialState() lineState {
	return lineState{file: 1, line: 1, isStmt: h.defaultStmt}
}

// runProgram executes the line-number program and collects sequences.
func (t *lineTable) runProgram(b *dbuf, h *lineHeader) {
	// Rows cost 4-5 bytes of program each in GCC's and clang's output:
	// sizing the slice up front avoids regrowing it.
	rows := make([]lineRow, 0, (uint64(len(b.data))-min(b.off, uint64(len(b.data))))/4)
	seqStart := 0
	emit := func(s *lineState) {
		rows = append(rows, lineRow{addr: s.addr, file: uint32(s.file), line: uint32(s.line), col: uint32(s.col)})
	}
	endSequence := func(s *lineState) {
		if len(rows) > seqStart && s.addr > rows[seqStart].addr {
			seq := rows[seqStart:len(rows):len(rows)]
			t.seqs = append(t.seqs, lineSeq{lo: seq[0].addr, hi: s.addr, rows: seq})
			seqStart = len(rows)
		} else {
			rows = rows[:seqStart] // empty sequence: drop its rows
		}
	}
	s := h.initialState()
	data := b.data
	for b.off < uint64(len(data)) && !b.err {
		op := data[b.off]
		b.off++
		if op >= h.opcodeBase {
			// A special opcode: most rows are one byte of program, so this
			// path avoids everything the others need.
			adj := op - h.opcodeBase
			s.addr += uint64(adj/h.lineRange) * uint64(h.minInstLen)
			s.line += int64(h.lineBase) + int64(adj%h.lineRange)
			rows = append(rows, lineRow{addr: s.addr, file: uint32(s.file), line: uint32(s.line), col: uint32(s.col)})
			continue
		}
		switch {
		case op == 0:
			n := b.uleb()
			if n == 0 || n > uint64(len(b.data))-b.off {
				b.err = true
				break
			}
			next := b.off + n
			switch b.u8() {
			case lneEndSequence:
				endSequence(&s)
				s = h.initialState()
			case lneSetAddress:
				s.addr = b.sized(uint8(n - 1))
			case lneDefineFile:
				name := b.cstr()
				t.files = append(t.files, joinSourcePath("", "", string(name)))
			case lneSetDiscriminator:
			}
			b.off = next
		case op == lnsCopy:
			emit(&s)
		case op == lnsAdvancePC:
			s.addr += b.uleb() * uint64(h.minInstLen)
		case op == lnsAdvanceLine:
			s.line += b.sleb()
		case op == lnsSetFile:
			s.file = b.uleb()
		case op == lnsSetColumn:
			s.col = b.uleb()
		case op == lnsNegateStmt:
			s.isStmt = !s.isStmt
		case op == lnsSetBasicBlock, op == lnsSetPrologueEnd, op == lnsSetEpilogueBegin:
		case op == lnsConstAddPC:
			s.addr += uint64((255-h.opcodeBase)/h.lineRange) * uint64(h.minInstLen)
		case op == lnsFixedAdvancePC:
			s.addr += uint64(b.u16())
		default:
			// An opcode this decoder does not know (or lnsSetISA): skip
			// its operands, whose count the header gives.
			if int(op-1) < len(h.stdLens) {
				for range h.stdLens[op-1] {
					b.uleb()
				}
			}
		}
	}
}

// index sorts the sequences for binary search.
func (t *lineTable) index() {
	for i := range t.seqs {
		rows := t.seqs[i].rows
		if !sort.SliceIsSorted(rows, func(a, b int) bool { return rows[a].addr < rows[b].addr }) {
			// Out-of-order rows break the spec; keep program order among
			// equal addresses, which is what decides the row shown.
			sort.SliceStable(rows, func(a, b int) bool { return rows[a].addr < rows[b].addr })
		}
	}
	sort.SliceStable(t.seqs, func(i, j int) bool { return t.seqs[i].lo < t.seqs[j].lo })
	t.maxHi = make([]uint64, len(t.seqs))
	var hi uint64
	for i, s := range t.seqs {
		hi = max(hi, s.hi)
		t.maxHi[i] = hi
	}
}

// lookup returns the row describing pc: the last row at or before pc in the
// sequence containing pc, as llvm-symbolizer and addr2line choose it.
func (t *lineTable) lookup(pc uint64) (lineRow, bool) {
	i := lastContaining(len(t.seqs), pc,
		func(i int) uint64 { return t.seqs[i].lo },
		func(i int) uint64 { return t.seqs[i].hi },
		func(i int) uint64 { return t.maxHi[i] })
	if i < 0 {
		return lineRow{}, false
	}
	rows := t.seqs[i].rows
	j := sort.Search(len(rows), func(j int) bool { return rows[j].addr > pc }) - 1
	if j < 0 {
		return lineRow{}, false
	}
	return rows[j], true
}

// file returns the path of a file index ("" when out of range).
func (t *lineTable) file(idx uint64) string {
	if idx < uint64(len(t.files)) {
		return t.files[idx]
	}
	return ""
}

// lastContaining finds, among n intervals sorted by lo, the one with the
// greatest lo that contains pc, or -1. maxHi[i] is the largest hi among
// intervals 0..i: once it is <= pc no earlier interval can contain pc, so
// overlapping intervals cost a short backward scan and disjoint ones none.
func lastContaining(n int, pc uint64, lo, hi, maxHi func(int) uint64) int {
	i := sort.Search(n, func(i int) bool { return lo(i) > pc }) - 1
	for ; i >= 0 && maxHi(i) > pc; i-- {
		if hi(i) > pc {
			return i
		}
	}
	return -1
}
