package symbolize

import (
	"encoding/binary"
	"math"
)

// attrSpec is one attribute of an abbreviation.
type attrSpec struct {
	attr     uint32
	form     uint32
	implicit int64 // the value of a DW_FORM_implicit_const attribute
}

type abbrev struct {
	tag        uint64
	children   bool
	hasSibling bool
	specs      []attrSpec
	// size caches the encoded size of a DIE of this abbreviation for the
	// unit format sizeFormat (address and offset sizes, version), or -1
	// when some form has a variable size.
	size       int
	sizeFormat uint32
}

// abbrevTable maps abbreviation codes to abbreviations. It is parsed
// incrementally, up to the code asked for: reading just the unit DIEs of a
// library (to index units by address) then costs the first entry of each
// table, not all of .debug_abbrev. Codes are almost always 1..N, hence the
// slice; the map takes the rest.
type abbrevTable struct {
	b      dbuf
	done   bool
	dense  []*abbrev
	sparse map[uint64]*abbrev
	// Abbreviations and their attribute lists are carved from chunks:
	// one allocation per entry made parsing .debug_abbrev allocation-bound.
	abbrevArena []abbrev
	specArena   []attrSpec
}

func newAbbrevTable(data []byte, off uint64, order binary.ByteOrder) *abbrevTable {
	return &abbrevTable{b: newDbuf(data, off, order)}
}

// get returns the abbreviation for code, or nil if the table has none.
func (t *abbrevTable) get(code uint64) *abbrev {
	if a := t.parsed(code); a != nil {
		return a
	}
	for !t.done {
		if c, a := t.parseNext(); c == code {
			return a
		}
	}
	return nil
}

func (t *abbrevTable) parsed(code uint64) *abbrev {
	if code < uint64(len(t.dense)) {
		return t.dense[code]
	}
	return t.sparse[code]
}

// parseNext parses the next entry; done is set at the table's end or at
// malformed data.
func (t *abbrevTable) parseNext() (uint64, *abbrev) {
	b := &t.b
	code := b.uleb()
	if code == 0 || b.err {
		t.done = true
		return 0, nil
	}
	a := t.newAbbrev()
	a.tag, a.children = b.uleb(), b.u8() != 0
	first := len(t.specArena)
	for {
		attr, form := b.uleb(), b.uleb()
		if b.err {
			t.done = true
			return 0, nil
		}
		if attr == 0 && form == 0 {
			break
		}
		if attr > math.MaxUint32 || form > math.MaxUint32 {
			t.done = true // no such attribute or form: corrupt
			return 0, nil
		}
		spec := attrSpec{attr: uint32(attr), form: uint32(form)}
		if form == formImplicitConst {
			spec.implicit = b.sleb()
		}
		a.hasSibling = a.hasSibling || attr == attrSibling
		if len(t.specArena) == cap(t.specArena) {
			// A new chunk; the entry's attributes so far move with it, as
			// they must stay contiguous.
			chunk := make([]attrSpec, 0, max(min(2*cap(t.specArena), 1024), 16, 2*(len(t.specArena)-first)))
			t.specArena = append(chunk, t.specArena[first:]...)
			first = 0
		}
		t.specArena = append(t.specArena, spec)
	}
	a.specs = t.specArena[first:len(t.specArena):len(t.specArena)]
	t.set(code, a)
	return code, a
}

func (t *abbrevTable) newAbbrev() *abbrev {
	if len(t.abbrevArena) == cap(t.abbrevArena) {
		// Chunks grow: many tables are only ever asked for their first
		// entry (the unit DIE's), others have hundreds.
		t.abbrevArena = make([]abbrev, 0, min(max(2*cap(t.abbrevArena), 4), 256))
	}
	t.abbrevArena = append(t.abbrevArena, abbrev{size: -1})
	return &t.abbrevArena[len(t.abbrevArena)-1]
}

func (t *abbrevTable) set(code uint64, a *abbrev) {
	if code < 1<<14 {
		if code >= uint64(len(t.dense)) {
			grown := make([]*abbrev, max(code+1, 2*uint64(len(t.dense)), 8))
			copy(grown, t.dense)
			t.dense = grown
		}
		t.dense[code] = a
		return
	}
	if t.sparse == nil {
		t.sparse = map[uint64]*abbrev{}
	}
	t.sparse[code] = a
}

// encodedSize returns the size of a DIE of abbreviation a in unit u, or -1
// when it varies from DIE to DIE.
func (a *abbrev) encodedSize(u *unit) int {
	format := uint32(u.addrSize)<<24 | uint32(u.offSize)<<16 | uint32(u.version)
	if a.sizeFormat == format {
		return a.size
	}
	size := 0
	for _, s := range a.specs {
		n := formSize(u, uint64(s.form))
		if n < 0 {
			size = -1
			break
		}
		size += n
	}
	a.size, a.sizeFormat = size, format
	return size
}

// formSize is the encoded size of a value of the form, or -1 when the
// value itself says (LEB128, strings, blocks).
func formSize(u *unit, form uint64) int {
	switch form {
	case formFlagPresent, formImplicitConst:
		return 0
	case formData1, formRef1, formFlag, formStrx1, formAddrx1:
		return 1
	case formData2, formRef2, formStrx2, formAddrx2:
		return 2
	case formStrx3, formAddrx3:
		return 3
	case formData4, formRef4, formRefSup4, formStrx4, formAddrx4:
		return 4
	case formData8, formRef8, formRefSig8, formRefSup8:
		return 8
	case formData16:
		return 16
	case formAddr:
		return int(u.addrSize)
	case formStrp, formLineStrp, formSecOffset, formStrpSup, formGNURefAlt, formGNUStrpAlt:
		return int(u.offSize)
	case formRefAddr:
		if u.version <= 2 {
			return int(u.addrSize)
		}
		return int(u.offSize)
	}
	return -1
}
