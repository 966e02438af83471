package symbolize

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// This file reads the parts of DWARF (versions 2 to 5) that symbolization
// needs: unit headers, abbreviations and the few attributes of
// subprogram, inlined-subroutine and unit DIEs. It is written for speed
// (no allocation per DIE, subtrees of types skipped through DW_AT_sibling)
// and for hostile input (every read is bounds-checked through dbuf).

// DWARF constants used here (DWARF 5, section 7).
const (
	tagCompileUnit       = 0x11
	tagPartialUnit       = 0x3c
	tagSkeletonUnit      = 0x4a
	tagSubprogram        = 0x2e
	tagInlinedSubroutine = 0x1d
	tagLexicalBlock      = 0x0b
	tagNamespace         = 0x39
	tagModule            = 0x1e
	tagTryBlock          = 0x32
	tagCatchBlock        = 0x25
	tagEntryPoint        = 0x03
	attrSibling          = 0x01
	attrName             = 0x03
	attrStmtList         = 0x10
	attrLowPC            = 0x11
	attrHighPC           = 0x12
	attrCompDir          = 0x1b
	attrAbstractOrigin   = 0x31
	attrSpecification    = 0x47
	attrRanges           = 0x55
	attrCallColumn       = 0x57
	attrCallFile         = 0x58
	attrCallLine         = 0x59
	attrLinkageName      = 0x6e
	attrStrOffsetsBase   = 0x72
	attrAddrBase         = 0x73
	attrRnglistsBase     = 0x74
	attrMIPSLinkageName  = 0x2007
	attrGNUAddrBase      = 0x2133
	formAddr             = 0x01
	formBlock2           = 0x03
	formBlock4           = 0x04
	formData2            = 0x05
	formData4            = 0x06
	formData8            = 0x07
	formString           = 0x08
	formBlock            = 0x09
	formBlock1           = 0x0a
	formData1            = 0x0b
	formFlag             = 0x0c
	formSdata            = 0x0d
	formStrp             = 0x0e
	formUdata            = 0x0f
	formRefAddr          = 0x10
	formRef1             = 0x11
	formRef2             = 0x12
	formRef4             = 0x13
	formRef8             = 0x14
	formRefUdata         = 0x15
	formIndirect         = 0x16
	formSecOffset        = 0x17
	formExprloc          = 0x18
	formFlagPresent      = 0x19
	formStrx             = 0x1a
	formAddrx            = 0x1b
	formRefSup4          = 0x1c
	formStrpSup          = 0x1d
	formData16           = 0x1e
	formLineStrp         = 0x1f
	formRefSig8          = 0x20
	formImplicitConst    = 0x21
	formLoclistx         = 0x22
	formRnglistx         = 0x23
	formRefSup8          = 0x24
	formStrx1            = 0x25
	formStrx2            = 0x26
	formStrx3            = 0x27
	formStrx4            = 0x28
	formAddrx1           = 0x29
	formAddrx2           = 0x2a
	formAddrx3           = 0x2b
	formAddrx4           = 0x2c
	formGNUAddrIndex     = 0x1f01
	formGNUStrIndex      = 0x1f02
	formGNURefAlt        = 0x1f20
	formGNUStrpAlt       = 0x1f21
	unitTypeCompile      = 1
	unitTypePartial      = 3
	unitTypeSkeleton     = 4
	rleEndOfList         = 0
	rleBaseAddressx      = 1
	rleStartxEndx        = 2
	rleStartxLength      = 3
	rleOffsetPair        = 4
	rleBaseAddress       = 5
	rleStartEnd          = 6
	rleStartLength       = 7
	maxIndirectFormChain = 4 // DW_FORM_indirect nesting we accept
	maxRangesPerList     = 1 << 16
	maxOriginChain       = 8 // abstract_origin/specification hops when naming
)

// unit is one compilation (or partial) unit of .debug_info.
type unit struct {
	off       uint64 // offset of the unit header
	end       uint64 // offset just past the unit
	firstDIE  uint64
	version   uint16
	addrSize  uint8
	offSize   uint8 // 4 (32-bit DWARF) or 8 (64-bit DWARF)
	abbrevOff uint64
	abbrevs   *abbrevTable

	// Attributes of the unit DIE.
	tag            uint64
	lowPC          uint64 // base address for range lists
	stmtList       uint64
	hasStmtList    bool
	compDir        string
	strOffsetsBase uint64
	addrBase       uint64
	rnglistsBase   uint64
}

// dwarfData is the DWARF of one object file, ready for lookups.
type dwarfData struct {
	sec   *dwarfSections
	order binary.ByteOrder
	units []*unit // sorted by offset
	// alt is the supplementary file named by .gnu_debugaltlink (dwz):
	// DW_FORM_GNU_ref_alt and DW_FORM_GNU_strp_alt point into it.
	alt *dwarfData
}

// newDwarfData parses unit headers and unit DIEs. Units it cannot parse are
// dropped: the others still answer.
func newDwarfData(sec *dwarfSections, order binary.ByteOrder) (*dwarfData, error) {
	d := &dwarfData{sec: sec, order: order}
	abbrevs := map[uint64]*abbrevTable{} // units of one object often share tables
	var firstErr error
	for off := uint64(0); off < uint64(len(sec.info)); {
		u, next, err := d.parseUnitHeader(off)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			if next <= off {
				break // the length itself is unusable: cannot go on
			}
			off = next
			continue
		}
		off = next
		if u == nil {
			continue // a type unit or another kind we do not need
		}
		t, ok := abbrevs[u.abbrevOff]
		if !ok {
			t = newAbbrevTable(sec.abbrev, u.abbrevOff, order)
			abbrevs[u.abbrevOff] = t
		}
		u.abbrevs = t
		if err := d.readUnitDIE(u); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		d.units = append(d.units, u)
	}
	if len(d.units) == 0 {
		if firstErr == nil {
			firstErr = errors.New("no compilation units")
		}
		return nil, fmt.Errorf("parse .debug_info: %w", firstErr)
	}
	return d, nil
}

// parseUnitHeader parses the unit header at off. It returns the offset of
// the next unit even when this one is not wanted or is malformed, so the
// walk can go on.
func (d *dwarfData) parseUnitHeader(off uint64) (*unit, uint64, error) {
	b := newDbuf(d.sec.info, off, d.order)
	length := uint64(b.u32())
	offSize := uint8(4)
	if length == 0xffffffff {
		length = b.u64()
		offSize = 8
	} else if length >= 0xfffffff0 {
		return nil, off, fmt.Errorf("unit at %#x: reserved length %#x", off, length)
	}
	if b.err || length > uint64(len(d.sec.info))-b.off {
		return nil, off, fmt.Errorf("unit at %#x: truncated", off)
	}
	end := b.off + length
	u := &unit{off: off, end: end, offSize: offSize}
	u.version = b.u16()
	unitType := uint8(unitTypeCompile)
	var abbrevOff uint64
	switch {
	case u.version >= 2 && u.version <= 4:
		abbrevOff = b.sized(offSize)
		u.addrSize = b.u8()
	case u.version == 5:
		unitType = b.u8()
		u.addrSize = b.u8()
		abbrevOff = b.sized(offSize)
		switch unitType {
		case unitTypeCompile, unitTypePartial:
		case unitTypeSkeleton:
			b.skip(8) // dwo_id
		default:
			return nil, end, nil
		}
	default:
		return nil, end, fmt.Errorf("unit at %#x: unsupported DWARF version %d", off, u.version)
	}
	if b.err || b.off > end {
		return nil, end, fmt.Errorf("unit at %#x: truncated header", off)
	}
	if u.addrSize != 4 && u.addrSize != 8 {
		return nil, end, fmt.Errorf("unit at %#x: address size %d", off, u.addrSize)
	}
	u.firstDIE = b.off
	u.abbrevOff = abbrevOff
	return u, end, nil
}

// readUnitDIE reads the unit's own DIE for the attributes every other
// lookup in the unit depends on.
func (d *dwarfData) readUnitDIE(u *unit) error {
	b := newDbuf(d.sec.info[:u.end], u.firstDIE, d.order)
	var e die
	if !d.readDIE(u, &b, &e) {
		return fmt.Errorf("unit at %#x: unreadable unit DIE", u.off)
	}
	u.tag = e.tag
	switch e.tag {
	case tagCompileUnit, tagPartialUnit, tagSkeletonUnit:
	default:
		return fmt.Errorf("unit at %#x: DIE tag %#x is not a unit", u.off, e.tag)
	}
	// The bases first: low_pc itself may be an index into .debug_addr.
	u.strOffsetsBase, u.addrBase, u.rnglistsBase = e.strOffsetsBase, e.addrBase, e.rnglistsBase
	if e.low.present {
		u.lowPC = d.address(u, e.low)
	}
	u.stmtList, u.hasStmtList = e.stmtList, e.hasStmtList
	u.compDir = d.str(u, e.compDir)
	return nil
}

// attrVal is an attribute value as read, resolved later (strings,
// indexed addresses) because resolution may need attributes of the unit
// DIE that come after it.
type attrVal struct {
	form    uint64
	val     uint64
	present bool
}

// die holds the attributes of one DIE that symbolization uses.
type die struct {
	off      uint64
	tag      uint64
	children bool
	sibling  uint64

	low, high, ranges attrVal
	name, linkage     attrVal
	origin, spec      attrVal
	callFile          uint64
	callLine          uint64
	callColumn        uint64

	// Unit DIE only.
	stmtList                               uint64
	hasStmtList                            bool
	compDir                                attrVal
	strOffsetsBase, addrBase, rnglistsBase uint64
}

// readDIE reads the DIE at b's position into e. It returns false at a
// null entry (end of siblings) or on malformed input (then b.err is set).
func (d *dwarfData) readDIE(u *unit, b *dbuf, e *die) bool {
	off := b.off
	a := d.nextAbbrev(u, b)
	if a == nil {
		return false
	}
	return d.decodeDIE(u, b, a, off, e)
}

// decodeDIE reads the attributes of a DIE at off whose abbreviation code
// was just read.
func (d *dwarfData) decodeDIE(u *unit, b *dbuf, a *abbrev, off uint64, e *die) bool {
	*e = die{off: off, tag: a.tag, children: a.children}
	for i := range a.specs {
		s := &a.specs[i]
		v := d.readForm(u, b, uint64(s.form), s.implicit)
		if b.err {
			return false
		}
		switch s.attr {
		case attrSibling:
			e.sibling = d.refOffset(u, v)
		case attrName:
			e.name = v
		case attrLinkageName, attrMIPSLinkageName:
			e.linkage = v
		case attrLowPC:
			e.low = v
		case attrHighPC:
			e.high = v
		case attrRanges:
			e.ranges = v
		case attrAbstractOrigin:
			e.origin = v
		case attrSpecification:
			e.spec = v
		case attrCallFile:
			e.callFile = v.val
		case attrCallLine:
			e.callLine = v.val
		case attrCallColumn:
			e.callColumn = v.val
		case attrStmtList:
			e.stmtList, e.hasStmtList = v.val, true
		case attrCompDir:
			e.compDir = v
		case attrStrOffsetsBase:
			e.strOffsetsBase = v.val
		case attrAddrBase, attrGNUAddrBase:
			e.addrBase = v.val
		case attrRnglistsBase:
			e.rnglistsBase = v.val
		}
	}
	return true
}

// nextAbbrev reads a DIE's abbreviation code. It returns nil at a null
// entry (end of siblings) or on malformed input (then b.err is set).
func (d *dwarfData) nextAbbrev(u *unit, b *dbuf) *abbrev {
	code := b.uleb()
	if code == 0 || b.err {
		return nil
	}
	a := u.abbrevs.get(code)
	if a == nil {
		b.err = true
	}
	return a
}

// skipDIE skips the attributes of a DIE whose abbreviation code was just
// read, returning its DW_AT_sibling (0 if none). Most DIEs of a unit are
// types, variables and parameters: skipping them by a precomputed size,
// without decoding, is what makes walking a unit cheap.
func (d *dwarfData) skipDIE(u *unit, b *dbuf, a *abbrev) (sibling uint64) {
	if !a.hasSibling {
		if n := a.encodedSize(u); n >= 0 {
			b.skip(uint64(n))
			return 0
		}
	}
	for i := range a.specs {
		s := &a.specs[i]
		v := d.readForm(u, b, uint64(s.form), s.implicit)
		if s.attr == attrSibling {
			sibling = d.refOffset(u, v)
		}
	}
	return sibling
}

// readForm reads one attribute value. Blocks and other values
// symbolization never looks at are skipped and read as zero.
func (d *dwarfData) readForm(u *unit, b *dbuf, form uint64, implicit int64) attrVal {
	for range maxIndirectFormChain {
		if form != formIndirect {
			break
		}
		form = b.uleb()
	}
	v := attrVal{form: form, present: true}
	switch form {
	case formAddr:
		v.val = b.sized(u.addrSize)
	case formData1, formRef1, formFlag, formStrx1, formAddrx1:
		v.val = uint64(b.u8())
	case formData2, formRef2, formStrx2, formAddrx2:
		v.val = uint64(b.u16())
	case formStrx3, formAddrx3:
		v.val = uint64(b.u24())
	case formData4, formRef4, formRefSup4, formStrx4, formAddrx4:
		v.val = uint64(b.u32())
	case formData8, formRef8, formRefSig8, formRefSup8:
		v.val = b.u64()
	case formData16:
		b.skip(16)
	case formSdata:
		v.val = uint64(b.sleb())
	case formUdata, formRefUdata, formStrx, formAddrx, formLoclistx, formRnglistx,
		formGNUAddrIndex, formGNUStrIndex:
		v.val = b.uleb()
	case formString:
		v.val = b.off
		b.cstr()
	case formStrp, formLineStrp, formSecOffset, formStrpSup, formGNURefAlt, formGNUStrpAlt:
		v.val = b.sized(u.offSize)
	case formRefAddr:
		if u.version <= 2 {
			v.val = b.sized(u.addrSize)
		} else {
			v.val = b.sized(u.offSize)
		}
	case formBlock1:
		b.skip(uint64(b.u8()))
	case formBlock2:
		b.skip(uint64(b.u16()))
	case formBlock4:
		b.skip(uint64(b.u32()))
	case formBlock, formExprloc:
		b.skip(b.uleb())
	case formFlagPresent:
		v.val = 1
	case formImplicitConst:
		v.val = uint64(implicit)
	default:
		// An unknown form has an unknown size: the rest of the unit
		// cannot be decoded.
		b.err = true
	}
	return v
}

// refOffset turns a reference into a .debug_info offset of this file
// (ok=false for references into another file: type units, dwz files).
func (d *dwarfData) refOffset(u *unit, v attrVal) uint64 {
	switch v.form {
	case formRef1, formRef2, formRef4, formRef8, formRefUdata:
		return u.off + v.val
	case formRefAddr:
		return v.val
	}
	return 0
}

// str resolves a string attribute ("" when absent or unresolvable).
func (d *dwarfData) str(u *unit, v attrVal) string {
	if !v.present {
		return ""
	}
	switch v.form {
	case formString:
		return cstrAt(d.sec.info, v.val)
	case formStrp:
		return cstrAt(d.sec.str, v.val)
	case formLineStrp:
		return cstrAt(d.sec.lineStr, v.val)
	case formStrx, formStrx1, formStrx2, formStrx3, formStrx4, formGNUStrIndex:
		b := newDbuf(d.sec.strOffsets, u.strOffsetsBase+v.val*uint64(u.offSize), d.order)
		off := b.sized(u.offSize)
		if b.err {
			return ""
		}
		return cstrAt(d.sec.str, off)
	case formGNUStrpAlt, formStrpSup:
		if d.alt == nil {
			return ""
		}
		return cstrAt(d.alt.sec.str, v.val)
	}
	return ""
}

// address resolves an address attribute, indexed (DW_FORM_addrx*) or not.
func (d *dwarfData) address(u *unit, v attrVal) uint64 {
	switch v.form {
	case formAddrx, formAddrx1, formAddrx2, formAddrx3, formAddrx4, formGNUAddrIndex:
		return d.indexedAddr(u, v.val)
	}
	return v.val
}

func (d *dwarfData) indexedAddr(u *unit, idx uint64) uint64 {
	b := newDbuf(d.sec.addr, u.addrBase+idx*uint64(u.addrSize), d.order)
	return b.sized(u.addrSize)
}

// pcRanges returns the address ranges of a DIE (low_pc/high_pc, or
// DW_AT_ranges), appended to out. Empty ranges and ranges starting at 0 are
// dropped: linkers leave the code of discarded functions (COMDAT
// duplicates, --gc-sections) at address 0 in the debug info, and no real
// code lives in the first page of an executable or library.
func (d *dwarfData) pcRanges(u *unit, e *die, out [][2]uint64) [][2]uint64 {
	if e.low.present && e.high.present {
		lo := d.address(u, e.low)
		hi := e.high.val
		switch e.high.form {
		case formAddr, formAddrx, formAddrx1, formAddrx2, formAddrx3, formAddrx4, formGNUAddrIndex:
			hi = d.address(u, e.high)
		default: // DWARF 4+: high_pc of a constant class is a length
			hi = lo + e.high.val
		}
		return appendRange(out, lo, hi)
	}
	if !e.ranges.present {
		return out
	}
	if u.version >= 5 {
		off := e.ranges.val
		if e.ranges.form == formRnglistx {
			b := newDbuf(d.sec.rnglists, u.rnglistsBase+off*uint64(u.offSize), d.order)
			off = u.rnglistsBase + b.sized(u.offSize)
			if b.err {
				return out
			}
		}
		return d.rangeList5(u, off, out)
	}
	return d.rangeList4(u, e.ranges.val, out)
}

func appendRange(out [][2]uint64, lo, hi uint64) [][2]uint64 {
	if lo == 0 || hi <= lo {
		return out
	}
	return append(out, [2]uint64{lo, hi})
}

// rangeList4 decodes a DWARF 2-4 .debug_ranges list.
func (d *dwarfData) rangeList4(u *unit, off uint64, out [][2]uint64) [][2]uint64 {
	b := newDbuf(d.sec.ranges, off, d.order)
	base := u.lowPC
	maxAddr := ^uint64(0) >> (64 - 8*uint(u.addrSize))
	for range maxRangesPerList {
		lo, hi := b.sized(u.addrSize), b.sized(u.addrSize)
		if b.err || (lo == 0 && hi == 0) {
			break
		}
		if lo == maxAddr {
			base = hi
			continue
		}
		out = appendRange(out, base+lo, base+hi)
	}
	return out
}

// rangeList5 decodes a DWARF 5 .debug_rnglists list.
func (d *dwarfData) rangeList5(u *unit, off uint64, out [][2]uint64) [][2]uint64 {
	b := newDbuf(d.sec.rnglists, off, d.order)
	base := u.lowPC
	for range maxRangesPerList {
		switch b.u8() {
		case rleEndOfList:
			return out
		case rleBaseAddressx:
			base = d.indexedAddr(u, b.uleb())
		case rleStartxEndx:
			lo, hi := d.indexedAddr(u, b.uleb()), d.indexedAddr(u, b.uleb())
			out = appendRange(out, lo, hi)
		case rleStartxLength:
			lo := d.indexedAddr(u, b.uleb())
			out = appendRange(out, lo, lo+b.uleb())
		case rleOffsetPair:
			lo, hi := b.uleb(), b.uleb()
			out = appendRange(out, base+lo, base+hi)
		case rleBaseAddress:
			base = b.sized(u.addrSize)
		case rleStartEnd:
			lo, hi := b.sized(u.addrSize), b.sized(u.addrSize)
			out = appendRange(out, lo, hi)
		case rleStartLength:
			lo := b.sized(u.addrSize)
			out = appendRange(out, lo, lo+b.uleb())
		default:
			return out
		}
		if b.err {
			return out
		}
	}
	return out
}

// unitAt returns the unit containing the .debug_info offset off.
func (d *dwarfData) unitAt(off uint64) *unit {
	i := sort.Search(len(d.units), func(i int) bool { return d.units[i].end > off })
	if i < len(d.units) && d.units[i].firstDIE <= off {
		return d.units[i]
	}
	return nil
}

// dieAt reads the DIE at a .debug_info offset.
func (d *dwarfData) dieAt(off uint64, e *die) (*unit, bool) {
	u := d.unitAt(off)
	if u == nil {
		return nil, false
	}
	b := newDbuf(d.sec.info[:u.end], off, d.order)
	if !d.readDIE(u, &b, e) {
		return nil, false
	}
	return u, true
}

// functionName returns the name of the function a subprogram or inlined
// subroutine DIE stands for, following DW_AT_abstract_origin and
// DW_AT_specification. A mangled (C++ or Rust) linkage name anywhere on
// that chain wins, because once demangled it carries the namespaces,
// template arguments and parameter types that DW_AT_name lacks; otherwise
// DW_AT_name wins over an unmangled linkage name, which is an assembler
// label (glibc's "__GI_abort" for abort) rather than the source name.
func (d *dwarfData) functionName(off uint64) (string, bool) {
	var plain, label string
	dd := d
	for range maxOriginChain {
		var e die
		u, ok := dd.dieAt(off, &e)
		if !ok {
			break
		}
		if e.linkage.present {
			s := dd.str(u, e.linkage)
			if isMangled(s) {
				return s, true
			}
			if label == "" {
				label = s
			}
		}
		if plain == "" && e.name.present {
			plain = dd.str(u, e.name)
		}
		next := e.origin
		if !next.present {
			next = e.spec
		}
		if !next.present {
			break
		}
		switch next.form {
		case formGNURefAlt, formRefSup4, formRefSup8:
			if dd.alt == nil {
				off = 0
				break
			}
			dd, off = dd.alt, next.val
		default:
			off = dd.refOffset(u, next)
		}
		if off == 0 {
			break
		}
	}
	if plain == "" {
		return label, false
	}
	return plain, false
}

// isMangled says whether a name is an Itanium C++ or Rust mangled name.
func isMangled(s string) bool {
	return len(s) > 2 && s[0] == '_' && (s[1] == 'Z' || s[1] == 'R')
}
