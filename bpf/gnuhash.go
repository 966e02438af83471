package bpf

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
)

// gnuHashTable finds an object's exported symbols by name through its
// .gnu.hash section, as the dynamic linker does: a few probes per name
// instead of decoding every dynamic symbol. Decoding libc's 3,000 symbols
// and keeping its functions in a map took ~1.5 ms of the ~4 ms lsan run
// waits, the command held, to bind the allocator; the few dozen names
// discovery asks for cost microseconds this way.
type gnuHashTable struct {
	nbuckets, symoffset uint32
	buckets, chains     []byte // little-endian uint32s
	dynsym, dynstr      []byte
}

// Layout of the 64-bit little-endian objects lsan reads (x86-64, arm64).
const (
	gnuHashHeader = 16 // nbuckets, symoffset, bloom size, bloom shift
	bloomWord     = 8
	symSize       = 24 // Elf64_Sym
)

// newGNUHashTable reads f's .gnu.hash, .dynsym and .dynstr; ok is false
// when f has none or they do not fit together (discovery then decodes
// every symbol, as for an object that has only the older DT_HASH).
func newGNUHashTable(f *elf.File) (*gnuHashTable, bool) {
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB {
		return nil, false
	}
	hash, dynsym, dynstr := sectionData(f, ".gnu.hash"), sectionData(f, ".dynsym"), sectionData(f, ".dynstr")
	if hash == nil || dynsym == nil || dynstr == nil {
		return nil, false
	}
	return parseGNUHash(hash, dynsym, dynstr)
}

func sectionData(f *elf.File, name string) []byte {
	s := f.Section(name)
	if s == nil || s.Type == elf.SHT_NOBITS {
		return nil
	}
	data, err := s.Data()
	if err != nil {
		return nil
	}
	return data
}

// parseGNUHash checks the section's header against its length, so that
// lookups never index outside it.
func parseGNUHash(hash, dynsym, dynstr []byte) (*gnuHashTable, bool) {
	if len(hash) < gnuHashHeader {
		return nil, false
	}
	le := binary.LittleEndian
	nbuckets, symoffset := le.Uint32(hash), le.Uint32(hash[4:])
	bloomSize := uint64(le.Uint32(hash[8:]))
	bucketsAt := uint64(gnuHashHeader) + bloomSize*bloomWord
	chainsAt := bucketsAt + uint64(nbuckets)*4
	if nbuckets == 0 || chainsAt > uint64(len(hash)) {
		return nil, false
	}
	return &gnuHashTable{
		nbuckets:  nbuckets,
		symoffset: symoffset,
		buckets:   hash[bucketsAt:chainsAt],
		chains:    hash[chainsAt:],
		dynsym:    dynsym,
		dynstr:    dynstr,
	}, true
}

// gnuHash is the hash function of .gnu.hash (Bernstein's, h*33 + c).
func gnuHash(name string) uint32 {
	h := uint32(5381)
	for i := 0; i < len(name); i++ {
		h = h*33 + uint32(name[i])
	}
	return h
}

// lookup calls visit with every dynamic symbol named name, in symbol
// table order.
func (t *gnuHashTable) lookup(name string, visit func(elf.Symbol)) {
	le := binary.LittleEndian
	h := gnuHash(name)
	i := le.Uint32(t.buckets[(h%t.nbuckets)*4:])
	if i == 0 || i < t.symoffset {
		return
	}
	for {
		c := uint64(i-t.symoffset) * 4
		if c+4 > uint64(len(t.chains)) {
			return
		}
		chain := le.Uint32(t.chains[c:])
		if chain|1 == h|1 {
			if s, ok := t.symbol(i); ok && s.Name == name {
				visit(s)
			}
		}
		if chain&1 != 0 || i == ^uint32(0) {
			return
		}
		i++
	}
}

// symbol decodes dynamic symbol i.
func (t *gnuHashTable) symbol(i uint32) (elf.Symbol, bool) {
	at := uint64(i) * symSize
	if at+symSize > uint64(len(t.dynsym)) {
		return elf.Symbol{}, false
	}
	le := binary.LittleEndian
	raw := t.dynsym[at : at+symSize]
	nameAt := uint64(le.Uint32(raw))
	if nameAt >= uint64(len(t.dynstr)) {
		return elf.Symbol{}, false
	}
	name := t.dynstr[nameAt:]
	if end := bytes.IndexByte(name, 0); end >= 0 {
		name = name[:end]
	}
	return elf.Symbol{
		Name:    string(name),
		Info:    raw[4],
		Other:   raw[5],
		Section: elf.SectionIndex(le.Uint16(raw[6:])),
		Value:   le.Uint64(raw[8:]),
		Size:    le.Uint64(raw[16:]),
	}, true
}
