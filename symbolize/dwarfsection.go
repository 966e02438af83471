package symbolize

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

const (
	// maxSectionSize caps what one section may decompress to, so that a
	// compression bomb costs an error rather than the machine's memory.
	maxSectionSize = 1 << 31
	// maxDecompressedFactor caps the compression ratio of a section.
	maxDecompressedFactor = 1 << 12
)

// dwarfSections holds the (decompressed) DWARF sections of one ELF file.
type dwarfSections struct {
	info, abbrev, line, str, lineStr, strOffsets, addr, ranges, rnglists []byte
}

// loadDWARFSections reads the DWARF sections of f that symbolization uses,
// decompressing SHF_COMPRESSED and .zdebug_ sections, concurrently because
// inflating .debug_info dominates the cost of loading a large object.
func loadDWARFSections(obj *elfObject) (*dwarfSections, error) {
	f := obj.f
	var ds dwarfSections
	targets := map[string]*[]byte{
		"info": &ds.info, "abbrev": &ds.abbrev, "line": &ds.line, "str": &ds.str,
		"line_str": &ds.lineStr, "str_offsets": &ds.strOffsets, "addr": &ds.addr,
		"ranges": &ds.ranges, "rnglists": &ds.rnglists,
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, s := range f.Sections {
		name, ok := dwarfSectionName(s.Name)
		if !ok {
			continue
		}
		dst, ok := targets[name]
		if !ok || s.Type == elf.SHT_NOBITS {
			continue
		}
		wg.Add(1)
		go func(s *elf.Section, dst *[]byte) {
			defer wg.Done()
			b, err := readSection(s, obj.size)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			*dst = b
		}(s, dst)
	}
	wg.Wait()
	if len(ds.info) == 0 {
		if len(errs) > 0 {
			return nil, errs[0]
		}
		return nil, errors.New("no .debug_info")
	}
	// A broken auxiliary section only costs what it describes; a broken
	// .debug_info or .debug_abbrev costs everything.
	if len(ds.abbrev) == 0 {
		return nil, fmt.Errorf("no usable .debug_abbrev: %v", errors.Join(errs...))
	}
	return &ds, nil
}

func dwarfSectionName(s string) (string, bool) {
	switch {
	case strings.HasPrefix(s, ".debug_"):
		return s[len(".debug_"):], true
	case strings.HasPrefix(s, ".zdebug_"):
		return s[len(".zdebug_"):], true
	}
	return "", false
}

// readSection returns the section's contents, decompressed. The file
// must hold an uncompressed section whole; a compressed one may inflate to
// maxDecompressedFactor times its stored size and maxSectionSize at most
// (real debug info compresses 3-10x, bombs 1000x), and memory is committed
// as data actually arrives, not as headers claim.
func readSection(s *elf.Section, fileSize int64) (b []byte, err error) {
	defer func() {
		// The decompressors are trusted not to panic, but a panic here
		// would kill the whole process from a goroutine: never let it.
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("section %s: panic: %v", s.Name, r)
		}
	}()
	if s.Offset > uint64(fileSize) || s.FileSize > uint64(fileSize)-s.Offset {
		return nil, fmt.Errorf("section %s: beyond the end of the file", s.Name)
	}
	r := s.Open() // first: for a .zdebug section, this is what reads the size
	limit := min(s.Size, maxSectionSize)
	if compressed := s.Size != s.FileSize; compressed {
		limit = min(limit, s.FileSize*maxDecompressedFactor)
	}
	if s.Size > limit {
		return nil, fmt.Errorf("section %s: %d bytes, more than the %d allowed", s.Name, s.Size, limit)
	}
	// Start with the likely size (decompressing into a buffer of the
	// right size saves the copies of growing one) but no more than a
	// plausible compression ratio allows.
	b = make([]byte, 0, min(s.Size, max(s.FileSize*plausibleRatio, 1<<16)))
	b, err = readUpTo(r, b, int(limit))
	if err != nil {
		return nil, fmt.Errorf("section %s: %w", s.Name, err)
	}
	return b, nil
}

// plausibleRatio is the compression ratio of real debug sections, rarely
// reached: the initial buffer size for a compressed section.
const plausibleRatio = 16

// readUpTo appends what r yields to b, up to limit bytes in all.
func readUpTo(r io.Reader, b []byte, limit int) ([]byte, error) {
	for len(b) < limit {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // let append pick the growth
		}
		n, err := r.Read(b[len(b):min(cap(b), limit)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}
