package symbolize

import (
	"fmt"
	"sort"
)

// dwarfIndex answers "which functions, file and line is this address" for
// one object's DWARF. Building it reads only the unit DIEs; a unit's line
// table and function scopes are decoded the first time an address inside
// the unit is looked up, so symbolizing a few PCs in a large library
// costs a few units, not the whole debug info.
type dwarfIndex struct {
	d      *dwarfData
	units  []*unitIndex
	ranges []unitRange // address ranges of units, sorted by lo
	maxHi  []uint64
	names  map[uint64]funcName // by DIE offset
}

type unitRange struct {
	lo, hi uint64
	unit   *unitIndex
}

// unitIndex is the lazily decoded content of one unit.
type unitIndex struct {
	u      *unit
	loaded bool
	err    error
	lines  *lineTable
	scopes []scopeRange // concrete subprograms, sorted by lo
}

// scope is a concrete function body: an out-of-line subprogram, or an
// inlined copy of a function inside another scope.
type scope struct {
	die      uint64 // the DIE whose name (via abstract origin) is the function's
	inlined  bool
	callFile uint64 // for inlined scopes: where the caller called it
	callLine uint64
	callCol  uint64
	children []scopeRange // inlined scopes directly inside this one, sorted by lo
}

// scopeRange is one address range of a scope; maxHi is the largest hi of
// this and the preceding ranges of the same list (see lastContaining).
type scopeRange struct {
	lo, hi, maxHi uint64
	s             *scope
}

type funcName struct {
	name    string
	linkage bool
}

// dwarfFrame is one frame found in DWARF, innermost first.
type dwarfFrame struct {
	name    string
	linkage bool // name is a linkage (mangled) name
	file    string
	line    uint32
	col     uint32
	inlined bool
}

// newDwarfIndex indexes the units of d by address.
func newDwarfIndex(d *dwarfData) *dwarfIndex {
	x := &dwarfIndex{d: d, names: map[uint64]funcName{}}
	var rs [][2]uint64
	for _, u := range d.units {
		if u.tag == tagPartialUnit {
			continue // shared DIEs (dwz): no code of their own
		}
		ui := &unitIndex{u: u}
		x.units = append(x.units, ui)
		rs = x.unitRanges(ui, rs[:0])
		for _, r := range rs {
			x.ranges = append(x.ranges, unitRange{lo: r[0], hi: r[1], unit: ui})
		}
	}
	sort.SliceStable(x.ranges, func(i, j int) bool { return x.ranges[i].lo < x.ranges[j].lo })
	x.maxHi = make([]uint64, len(x.ranges))
	var hi uint64
	for i, r := range x.ranges {
		hi = max(hi, r.hi)
		x.maxHi[i] = hi
	}
	return x
}

// unitRanges returns the code ranges of a unit: from its DIE, or, for the
// producers that leave them out, from the sequences of its line table.
func (x *dwarfIndex) unitRanges(ui *unitIndex, out [][2]uint64) [][2]uint64 {
	var e die
	if u, ok := x.d.dieAt(ui.u.firstDIE, &e); ok {
		out = x.d.pcRanges(u, &e, out)
	}
	if len(out) > 0 {
		return out
	}
	x.load(ui)
	if ui.lines != nil {
		for _, s := range ui.lines.seqs {
			out = appendRange(out, s.lo, s.hi)
		}
	}
	return out
}

// lookup returns the frames for pc, innermost first, or nil when no unit
// covers pc. A frame may lack a name (no subprogram DIE covers pc) or a
// file (no line row): the caller completes it from the symbol table.
func (x *dwarfIndex) lookup(pc uint64) []dwarfFrame {
	i := lastContaining(len(x.ranges), pc,
		func(i int) uint64 { return x.ranges[i].lo },
		func(i int) uint64 { return x.ranges[i].hi },
		func(i int) uint64 { return x.maxHi[i] })
	if i < 0 {
		return nil
	}
	ui := x.ranges[i].unit
	x.load(ui) // a unit that failed to decode has no rows and no scopes
	row, hasRow := ui.lines.lookup(pc)
	chain := scopeChain(ui.scopes, pc)
	if len(chain) == 0 {
		if !hasRow {
			return nil
		}
		return []dwarfFrame{{file: ui.lines.file(uint64(row.file)), line: row.line, col: row.col}}
	}
	frames := make([]dwarfFrame, 0, len(chain))
	var file string
	var line, col uint32
	if hasRow {
		file, line, col = ui.lines.file(uint64(row.file)), row.line, row.col
	}
	for k := len(chain) - 1; k >= 0; k-- {
		s := chain[k]
		n := x.name(s.die)
		frames = append(frames, dwarfFrame{name: n.name, linkage: n.linkage,
			file: file, line: line, col: col, inlined: k > 0})
		// The next frame out is positioned at the call of this one.
		file, line, col = ui.lines.file(s.callFile), uint32(s.callLine), uint32(s.callCol)
	}
	return frames
}

func (x *dwarfIndex) name(off uint64) funcName {
	if n, ok := x.names[off]; ok {
		return n
	}
	var n funcName
	n.name, n.linkage = x.d.functionName(off)
	x.names[off] = n
	return n
}

// load decodes a unit's line table and scopes once. A panic while
// decoding (malformed DWARF the checks missed) costs this unit only.
func (x *dwarfIndex) load(ui *unitIndex) {
	if ui.loaded {
		return
	}
	ui.loaded = true
	defer func() {
		if r := recover(); r != nil {
			ui.err = fmt.Errorf("unit at %#x: panic: %v", ui.u.off, r)
			ui.scopes = nil
		}
		if ui.lines == nil {
			ui.lines = &lineTable{}
		}
	}()
	lines, err := x.d.parseLineTable(ui.u)
	if err != nil {
		ui.err = err
	}
	ui.lines = lines
	ui.scopes = x.d.parseScopes(ui.u)
}

// scopeChain returns the scopes containing pc, outermost first.
func scopeChain(list []scopeRange, pc uint64) []*scope {
	var chain []*scope
	for depth := 0; depth < 256 && len(list) > 0; depth++ {
		i := lastContaining(len(list), pc,
			func(i int) uint64 { return list[i].lo },
			func(i int) uint64 { return list[i].hi },
			func(i int) uint64 { return list[i].maxHi })
		if i < 0 {
			break
		}
		s := list[i].s
		chain = append(chain, s)
		list = s.children
	}
	return chain
}

// scopeLevel is an open DIE while walking a unit: the scope its children
// belong to, or skip for subtrees without code (types, abstract functions).
type scopeLevel struct {
	s    *scope
	skip bool
}

// parseScopes walks the DIEs of a unit and collects the function scopes
// with code: subprograms with addresses, wherever they are nested
// (namespaces for Rust, other functions for GNU C nested functions), and
// the inlined subroutines inside them.
func (d *dwarfData) parseScopes(u *unit) []scopeRange {
	b := newDbuf(d.sec.info[:u.end], u.firstDIE, d.order)
	var (
		top   []scopeRange
		stack []scopeLevel
		e     die
		rs    [][2]uint64
	)
	for b.off < u.end && !b.err {
		off := b.off
		a := d.nextAbbrev(u, &b)
		if a == nil {
			if b.err || len(stack) == 0 {
				break
			}
			stack = stack[:len(stack)-1] // a null entry closes the open DIE
			continue
		}
		var parent scopeLevel
		if len(stack) > 0 {
			parent = stack[len(stack)-1]
		}
		if parent.skip || !mayOpenScope(a.tag) {
			sibling := d.skipDIE(u, &b, a)
			if a.children {
				if sibling > off && sibling <= u.end {
					b.off = sibling // jump over the subtree without decoding it
				} else {
					stack = append(stack, scopeLevel{skip: true})
				}
			}
			continue
		}
		if !d.decodeDIE(u, &b, a, off, &e) {
			break
		}
		var cur scopeLevel
		cur, rs = d.enterDIE(u, &e, parent, &top, rs)
		if !e.children {
			continue
		}
		if cur.skip && e.sibling > off && e.sibling <= u.end {
			b.off = e.sibling
			continue
		}
		stack = append(stack, cur)
	}
	sortScopes(top)
	return top
}

// mayOpenScope says whether DIEs with this tag can be or contain function
// scopes; the others (types, variables, parameters...) are skipped whole.
func mayOpenScope(tag uint64) bool {
	switch tag {
	case tagSubprogram, tagEntryPoint, tagInlinedSubroutine, tagLexicalBlock, tagTryBlock, tagCatchBlock,
		tagCompileUnit, tagPartialUnit, tagSkeletonUnit, tagNamespace, tagModule:
		return true
	}
	return false
}

// enterDIE records the scope a DIE opens, if any, and says what its
// children belong to.
func (d *dwarfData) enterDIE(u *unit, e *die, parent scopeLevel, top *[]scopeRange, rs [][2]uint64) (scopeLevel, [][2]uint64) {
	switch e.tag {
	case tagSubprogram, tagEntryPoint:
		rs = d.pcRanges(u, e, rs[:0])
		if len(rs) == 0 {
			return scopeLevel{skip: true}, rs // abstract or declaration only
		}
		s := &scope{die: e.off}
		for _, r := range rs {
			*top = append(*top, scopeRange{lo: r[0], hi: r[1], s: s})
		}
		return scopeLevel{s: s}, rs
	case tagInlinedSubroutine:
		rs = d.pcRanges(u, e, rs[:0])
		if len(rs) == 0 || parent.s == nil {
			return scopeLevel{skip: true}, rs
		}
		s := &scope{die: e.off, inlined: true, callFile: e.callFile, callLine: e.callLine, callCol: e.callColumn}
		for _, r := range rs {
			parent.s.children = append(parent.s.children, scopeRange{lo: r[0], hi: r[1], s: s})
		}
		return scopeLevel{s: s}, rs
	case tagLexicalBlock, tagTryBlock, tagCatchBlock:
		if parent.s == nil {
			return scopeLevel{skip: true}, rs
		}
		return parent, rs // blocks are not frames: their inlined calls belong to the function
	case tagCompileUnit, tagPartialUnit, tagSkeletonUnit, tagNamespace, tagModule:
		return parent, rs
	}
	return scopeLevel{skip: true}, rs
}

// sortScopes sorts a scope list and, recursively, the children lists, and
// fills maxHi.
func sortScopes(list []scopeRange) {
	sort.SliceStable(list, func(i, j int) bool { return list[i].lo < list[j].lo })
	var hi uint64
	for i := range list {
		hi = max(hi, list[i].hi)
		list[i].maxHi = hi
	}
	seen := map[*scope]bool{}
	for i := range list {
		s := list[i].s
		if len(s.children) > 0 && !seen[s] {
			seen[s] = true
			sortScopes(s.children)
		}
	}
}
