package procmaps

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// DeletedSuffix is what the kernel appends to the path of a mapped file
// that was unlinked (or replaced by a rename) after it was mapped.
const DeletedSuffix = " (deleted)"

// Mapping is one line of /proc/PID/maps.
type Mapping struct {
	Start, End uint64
	Perms      string // "r-xp"
	Offset     uint64 // file offset mapped at Start
	Dev        string // "fd:01"
	Inode      uint64
	// Path is the file as the target sees it, without DeletedSuffix, or a
	// pseudo-name ("[heap]", "[anon:name]"), or "" for anonymous memory.
	Path    string
	Deleted bool
}

// Readable, Writable, Executable and Shared read the permission field.
func (m Mapping) Readable() bool   { return len(m.Perms) > 0 && m.Perms[0] == 'r' }
func (m Mapping) Writable() bool   { return len(m.Perms) > 1 && m.Perms[1] == 'w' }
func (m Mapping) Executable() bool { return len(m.Perms) > 2 && m.Perms[2] == 'x' }
func (m Mapping) Shared() bool     { return len(m.Perms) > 3 && m.Perms[3] == 's' }

// FileBacked reports whether a file lies behind the mapping: pseudo-mappings
// ([heap], [vdso], [anon:...]) and anonymous memory have none.
func (m Mapping) FileBacked() bool { return m.Inode != 0 && strings.HasPrefix(m.Path, "/") }

// Printed is the path field as the kernel printed it, DeletedSuffix included.
func (m Mapping) Printed() string {
	if m.Deleted {
		return m.Path + DeletedSuffix
	}
	return m.Path
}

// ErrNoMappings means the process has no address space: it has exited
// (a zombie) or is a kernel thread.
var ErrNoMappings = errors.New("no mappings")

// Read reads and parses /proc/PID/maps.
func Read(pid int) ([]Mapping, error) {
	return ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
}

// ReadFile reads and parses a file in the /proc/PID/maps format.
func ReadFile(path string) ([]Mapping, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	maps, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if len(maps) == 0 {
		return nil, fmt.Errorf("%s: %w", path, ErrNoMappings)
	}
	return maps, nil
}

// Parse parses the text of /proc/PID/maps. It returns every line it could
// parse, sorted by address, and an error naming the first line it could
// not: callers that can live with a partial list (symbolization) use the
// mappings anyway.
func Parse(data []byte) ([]Mapping, error) {
	var maps []Mapping
	var firstErr error
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		m, err := ParseLine(string(line))
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("line %d %q: %w", lineNo, line, err)
			}
			continue
		}
		maps = append(maps, m)
	}
	// The kernel prints mappings in address order; sort anyway, because
	// callers binary-search and must not depend on it.
	if !sort.SliceIsSorted(maps, func(i, j int) bool { return maps[i].Start < maps[j].Start }) {
		sort.SliceStable(maps, func(i, j int) bool { return maps[i].Start < maps[j].Start })
	}
	return maps, firstErr
}

// ParseLine parses "start-end perms offset dev inode   path". The kernel
// pads the inode field with spaces up to a fixed column; the path is
// everything after that padding, spaces in it included.
func ParseLine(line string) (Mapping, error) {
	var fields [5]string
	rest := line
	for i := range fields {
		rest = strings.TrimLeft(rest, " ")
		end := strings.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		fields[i], rest = rest[:end], rest[end:]
	}
	if fields[4] == "" {
		return Mapping{}, errors.New("too few fields")
	}
	lo, hi, ok := strings.Cut(fields[0], "-")
	if !ok {
		return Mapping{}, errors.New("bad address range")
	}
	var m Mapping
	var err error
	if m.Start, err = strconv.ParseUint(lo, 16, 64); err != nil {
		return Mapping{}, fmt.Errorf("bad start: %w", err)
	}
	if m.End, err = strconv.ParseUint(hi, 16, 64); err != nil {
		return Mapping{}, fmt.Errorf("bad end: %w", err)
	}
	if m.End < m.Start {
		return Mapping{}, errors.New("end before start")
	}
	m.Perms = fields[1]
	if m.Offset, err = strconv.ParseUint(fields[2], 16, 64); err != nil {
		return Mapping{}, fmt.Errorf("bad offset: %w", err)
	}
	m.Dev = fields[3]
	if m.Inode, err = strconv.ParseUint(fields[4], 10, 64); err != nil {
		return Mapping{}, fmt.Errorf("bad inode: %w", err)
	}
	m.Path = strings.TrimLeft(rest, " ")
	if strings.HasSuffix(m.Path, DeletedSuffix) {
		m.Path = strings.TrimSuffix(m.Path, DeletedSuffix)
		m.Deleted = true
	}
	return m, nil
}

// At returns the index of the mapping containing addr in maps (sorted by
// address), or -1.
func At(maps []Mapping, addr uint64) int {
	i := sort.Search(len(maps), func(i int) bool { return maps[i].End > addr })
	if i < len(maps) && maps[i].Start <= addr {
		return i
	}
	return -1
}
