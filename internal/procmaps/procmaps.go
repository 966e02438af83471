// Package procmaps parses /proc/PID/maps, the one parser every part of
// lsan uses (the tracer's allocator discovery, the scanner's roots, the
// symbolizer's modules, the launcher).
//
//	maps, err := procmaps.Read(pid)
//	for _, m := range maps { ... m.Start, m.End, m.Perms, m.Path ... }
//
// Each line is "start-end perms offset dev inode [path]": five fields
// separated by spaces, then padding, then the path, which may itself hold
// spaces and ends in " (deleted)" when the file was unlinked after it was
// mapped. Fields are taken by position, never found by searching the line
// (an inode number can also appear inside an address).
package procmaps

import (
	"errors"
	"fmt"
	"os"
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
	// Path is the file as the process sees it, without DeletedSuffix, or a
	// pseudo-name ([heap], [stack], [vdso], [anon:NAME], anon_inode:…), or
	// "" for anonymous memory.
	Path    string
	Deleted bool
}

func (m Mapping) Readable() bool   { return len(m.Perms) > 0 && m.Perms[0] == 'r' }
func (m Mapping) Writable() bool   { return len(m.Perms) > 1 && m.Perms[1] == 'w' }
func (m Mapping) Executable() bool { return len(m.Perms) > 2 && m.Perms[2] == 'x' }
func (m Mapping) Shared() bool     { return len(m.Perms) > 3 && m.Perms[3] == 's' }

// ErrNoProcess reports that the process is gone (or never was).
var ErrNoProcess = errors.New("no such process")

// Read reads and parses /proc/PID/maps.
func Read(pid int) ([]Mapping, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read mappings of pid %d: %w", pid, ErrNoProcess)
		}
		return nil, fmt.Errorf("read mappings of pid %d: %w", pid, err)
	}
	maps, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("read mappings of pid %d: %w", pid, err)
	}
	return maps, nil
}

// Parse parses the whole file; a line that does not parse is an error
// naming it.
func Parse(data []byte) ([]Mapping, error) {
	var maps []Mapping
	for lineNo, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		m, err := ParseLine(line)
		if err != nil {
			return nil, fmt.Errorf("maps line %d %q: %w", lineNo+1, line, err)
		}
		maps = append(maps, m)
	}
	return maps, nil
}

// ParseLine parses one line.
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
	// The path is everything after the padding, spaces included.
	m.Path = strings.TrimLeft(rest, " ")
	if strings.HasPrefix(m.Path, "/") && strings.HasSuffix(m.Path, DeletedSuffix) {
		m.Path, m.Deleted = strings.TrimSuffix(m.Path, DeletedSuffix), true
	}
	return m, nil
}
