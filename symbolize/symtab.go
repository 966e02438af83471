package symbolize

import (
	"cmp"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// symbol is a function symbol from an ELF symbol table.
type symbol struct {
	addr, end uint64 // [addr, end); end is the next symbol for size-0 symbols
	name      string
	bind      elf.SymBind
	sized     bool
}

// symbolTable finds the function symbol containing an address.
type symbolTable struct {
	syms  []symbol // sorted by addr, one per address
	maxHi []uint64
}

// readFunctionSymbols reads the defined function symbols (and IFUNC
// resolvers, functions too) of the symbol table of type typ (SHT_SYMTAB
// or SHT_DYNSYM). Data, sections, files and undefined imports are not
// what a PC can be in. Names are cut out of one copy of the string table
// rather than copied one by one: a large C++ library has 10^5 symbols.
func readFunctionSymbols(o *elfObject, typ elf.SectionType) ([]symbol, error) {
	var symtab *elf.Section
	for _, s := range o.f.Sections {
		if s.Type == typ {
			symtab = s
			break
		}
	}
	if symtab == nil || symtab.Link == 0 || int(symtab.Link) >= len(o.f.Sections) {
		return nil, nil
	}
	data, err := readSection(symtab, o.size)
	if err != nil {
		return nil, fmt.Errorf("symbol table: %w", err)
	}
	strData, err := readSection(o.f.Sections[symtab.Link], o.size)
	if err != nil {
		return nil, fmt.Errorf("symbol names: %w", err)
	}
	strtab := string(strData)
	entSize := 24
	if o.f.Class == elf.ELFCLASS32 {
		entSize = 16
	}
	var out []symbol
	for off := entSize; off+entSize <= len(data); off += entSize { // entry 0 is reserved
		e := decodeSymbol(data[off:off+entSize], o.f.Class, o.f.ByteOrder)
		t := elf.ST_TYPE(e.info)
		if (t != elf.STT_FUNC && t != elf.STT_GNU_IFUNC) || e.shndx == uint16(elf.SHN_UNDEF) || e.value == 0 {
			continue
		}
		name := cstrAtString(strtab, uint64(e.name))
		if name == "" {
			continue
		}
		out = append(out, symbol{addr: e.value, end: e.value + e.size, name: name,
			bind: elf.ST_BIND(e.info), sized: e.size > 0})
	}
	return out, nil
}

type rawSymbol struct {
	name        uint32
	info        uint8
	shndx       uint16
	value, size uint64
}

func decodeSymbol(b []byte, class elf.Class, order binary.ByteOrder) rawSymbol {
	if class == elf.ELFCLASS32 {
		return rawSymbol{name: order.Uint32(b[0:]), value: uint64(order.Uint32(b[4:])),
			size: uint64(order.Uint32(b[8:])), info: b[12], shndx: order.Uint16(b[14:])}
	}
	return rawSymbol{name: order.Uint32(b[0:]), info: b[4], shndx: order.Uint16(b[6:]),
		value: order.Uint64(b[8:]), size: order.Uint64(b[16:])}
}

// cstrAtString is cstrAt for a string: the result shares its memory.
func cstrAtString(s string, off uint64) string {
	if off >= uint64(len(s)) {
		return ""
	}
	rest := s[off:]
	if i := strings.IndexByte(rest, 0); i >= 0 {
		return rest[:i]
	}
	return ""
}

// newSymbolTable merges symbol lists (.symtab, .dynsym, MiniDebugInfo):
// aliases at one address collapse to the preferred name (see better).
func newSymbolTable(lists ...[]symbol) *symbolTable {
	var all []symbol
	for _, list := range lists {
		all = append(all, list...)
	}
	slices.SortStableFunc(all, func(a, b symbol) int { return cmp.Compare(a.addr, b.addr) })
	t := &symbolTable{}
	for _, s := range all {
		n := len(t.syms)
		if n > 0 && t.syms[n-1].addr == s.addr {
			t.syms[n-1] = mergeAliases(t.syms[n-1], s)
			continue
		}
		t.syms = append(t.syms, s)
	}
	// A symbol without a size (hand-written assembly) is taken to extend
	// to the next symbol, as llvm-symbolizer does.
	for i := range t.syms {
		if !t.syms[i].sized {
			t.syms[i].end = ^uint64(0)
			if i+1 < len(t.syms) {
				t.syms[i].end = t.syms[i+1].addr
			}
		}
	}
	t.maxHi = make([]uint64, len(t.syms))
	var hi uint64
	for i, s := range t.syms {
		hi = max(hi, s.end)
		t.maxHi[i] = hi
	}
	return t
}

// mergeAliases keeps the better name of two symbols at one address and the
// larger extent.
func mergeAliases(a, b symbol) symbol {
	keep := a
	if better(b, a) {
		keep = b
	}
	keep.end = max(a.end, b.end)
	keep.sized = a.sized || b.sized
	return keep
}

// better says whether symbol a names a function better than b, its alias:
// the name with fewer leading underscores first (the public name, not the
// implementation's: glibc's "calloc", a weak alias, over the global
// "__libc_calloc"), then the stronger binding (global, weak, local), then
// the shorter name ("free" over "cfree").
func better(a, b symbol) bool {
	if a.sized != b.sized {
		return a.sized
	}
	ua := len(a.name) - len(strings.TrimLeft(a.name, "_"))
	ub := len(b.name) - len(strings.TrimLeft(b.name, "_"))
	if ua != ub {
		return ua < ub
	}
	if ra, rb := bindRank(a.bind), bindRank(b.bind); ra != rb {
		return ra < rb
	}
	if len(a.name) != len(b.name) {
		return len(a.name) < len(b.name)
	}
	return a.name < b.name
}

func bindRank(b elf.SymBind) int {
	switch b {
	case elf.STB_GLOBAL:
		return 0
	case elf.STB_WEAK:
		return 1
	}
	return 2
}

// lookup returns the function symbol containing addr.
func (t *symbolTable) lookup(addr uint64) (symbol, bool) {
	if t == nil {
		return symbol{}, false
	}
	i := lastContaining(len(t.syms), addr,
		func(i int) uint64 { return t.syms[i].addr },
		func(i int) uint64 { return t.syms[i].end },
		func(i int) uint64 { return t.maxHi[i] })
	if i < 0 {
		return symbol{}, false
	}
	return t.syms[i], true
}
