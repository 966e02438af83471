package symbolize

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

const (
	ntGNUBuildID   = 3
	maxNoteSize    = 1 << 16
	maxBuildIDSize = 64
)

// elfObject is an opened ELF file with what is needed to map addresses:
// its loadable segments and identity.
type elfObject struct {
	f       *elf.File
	closer  io.Closer // nil for in-memory objects
	size    int64     // file size: no section may claim more
	loads   []elf.ProgHeader
	buildID []byte
}

// openELF parses the ELF headers of r. It never panics: debug/elf is
// hardened, but a panic on a hostile file would take the tool down, so
// one is turned into an error.
func openELF(r io.ReaderAt, size int64, closer io.Closer) (obj *elfObject, err error) {
	defer func() {
		if p := recover(); p != nil {
			obj, err = nil, fmt.Errorf("parse ELF: panic: %v", p)
		}
	}()
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("parse ELF: %w", err)
	}
	obj = &elfObject{f: f, closer: closer, size: size}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			obj.loads = append(obj.loads, p.ProgHeader)
		}
	}
	obj.buildID = readBuildID(f)
	return obj, nil
}

// openELFFile opens and parses an ELF file on disk; the file stays open
// (closed by close) because its sections are read lazily.
func openELFFile(path string) (*elfObject, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	obj, err := openELF(fh, st.Size(), fh)
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return obj, nil
}

func (o *elfObject) close() {
	if o != nil && o.closer != nil {
		o.closer.Close()
	}
}

func (o *elfObject) buildIDHex() string { return hex.EncodeToString(o.buildID) }

// readBuildID returns the GNU build-id from the notes, looked up by
// segment first (what is mapped) and by section otherwise (debug files
// have the section but their segments describe the stripped file).
func readBuildID(f *elf.File) []byte {
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE || p.Filesz > maxNoteSize {
			continue
		}
		if id := findBuildIDNote(readAllLimited(p.Open(), maxNoteSize), f.ByteOrder, p.Align); id != nil {
			return id
		}
	}
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOTE || s.Size > maxNoteSize {
			continue
		}
		if id := findBuildIDNote(readAllLimited(s.Open(), maxNoteSize), f.ByteOrder, s.Addralign); id != nil {
			return id
		}
	}
	return nil
}

func readAllLimited(r io.Reader, limit int64) []byte {
	b, _ := io.ReadAll(io.LimitReader(r, limit))
	return b
}

// findBuildIDNote scans ELF notes for NT_GNU_BUILD_ID owned by "GNU".
func findBuildIDNote(notes []byte, order binary.ByteOrder, align uint64) []byte {
	pad := uint64(4)
	if align == 8 {
		pad = 8
	}
	roundUp := func(n uint64) uint64 { return (n + pad - 1) &^ (pad - 1) }
	for len(notes) >= 12 {
		namesz := uint64(order.Uint32(notes[0:]))
		descsz := uint64(order.Uint32(notes[4:]))
		typ := order.Uint32(notes[8:])
		rest := notes[12:]
		if namesz > uint64(len(rest)) || roundUp(namesz) > uint64(len(rest)) {
			return nil
		}
		name := rest[:namesz]
		rest = rest[roundUp(namesz):]
		if descsz > uint64(len(rest)) {
			return nil
		}
		desc := rest[:descsz]
		if typ == ntGNUBuildID && bytes.Equal(name, []byte("GNU\x00")) && descsz > 0 && descsz <= maxBuildIDSize {
			return append([]byte(nil), desc...)
		}
		if roundUp(descsz) > uint64(len(rest)) {
			return nil
		}
		notes = rest[roundUp(descsz):]
	}
	return nil
}

// bias computes the load bias of a mapping of this object: the value that,
// added to an ELF virtual address, gives the run-time address. The kernel
// maps each PT_LOAD from its page-aligned file offset, so the segment is
// the one whose file range holds the mapping's offset. Neighbouring
// segments can share a file page (the last page of the read-only segment
// is the first of the text segment in linkers' default layout); then the
// segment that starts last is the one mapped here, because a mapping of
// the earlier segment starts at that segment's own first page. ok is false
// for a mapping no segment explains (the file was mapped as data).
func (o *elfObject) bias(start, offset uint64, pageSize uint64) (uint64, bool) {
	best := -1
	for i, p := range o.loads {
		alignedOff := p.Off &^ (pageSize - 1)
		if offset < alignedOff || offset >= p.Off+max(p.Filesz, 1) {
			continue
		}
		if best < 0 || alignedOff > o.loads[best].Off&^(pageSize-1) {
			best = i
		}
	}
	if best < 0 {
		return 0, false
	}
	p := o.loads[best]
	// The mapping starts at file offset `offset`, which the segment places
	// at vaddr p.Vaddr + (offset - p.Off) (modular arithmetic: offset may
	// be below p.Off within the first page).
	return start - (p.Vaddr + offset - p.Off), true
}

// section returns the named section's contents (nil when absent).
func (o *elfObject) section(name string, limit int64) []byte {
	s := o.f.Section(name)
	if s == nil || s.Type == elf.SHT_NOBITS {
		return nil
	}
	return readAllLimited(s.Open(), limit)
}

// hasDWARF says whether the object carries its own debug info.
func (o *elfObject) hasDWARF() bool {
	for _, name := range []string{".debug_info", ".zdebug_info"} {
		if s := o.f.Section(name); s != nil && s.Type != elf.SHT_NOBITS && s.Size > 0 {
			return true
		}
	}
	return false
}
