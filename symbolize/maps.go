package symbolize

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// deletedSuffix is what the kernel appends to the path of a mapped file
// that was unlinked (or replaced by a rename) after it was mapped.
const deletedSuffix = " (deleted)"

// mapping is one line of /proc/PID/maps.
type mapping struct {
	start, end uint64
	offset     uint64 // file offset mapped at start
	perms      string // "r-xp" etc.
	dev        string // "fd:01"
	inode      uint64
	path       string // as the target sees it, without deletedSuffix
	deleted    bool
}

func (m *mapping) executable() bool { return len(m.perms) >= 3 && m.perms[2] == 'x' }

// fileBacked reports whether the mapping comes from a file we could open:
// pseudo-mappings ([heap], [vdso], anon:...) and anonymous ones do not.
func (m *mapping) fileBacked() bool { return m.inode != 0 && strings.HasPrefix(m.path, "/") }

// readMaps reads and parses /proc/PID/maps.
func readMaps(pid int) ([]mapping, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, fmt.Errorf("read mappings of pid %d: %w", pid, err)
	}
	defer f.Close()
	maps, err := parseMaps(f)
	if err != nil {
		return nil, fmt.Errorf("read mappings of pid %d: %w", pid, err)
	}
	if len(maps) == 0 {
		// A zombie or a kernel thread has no mappings: nothing could be
		// symbolized, which the caller should know about.
		return nil, fmt.Errorf("read mappings of pid %d: no mappings (process exited?)", pid)
	}
	return maps, nil
}

// parseMaps parses the /proc/PID/maps format. Lines it cannot parse are
// skipped rather than failing the whole snapshot: one odd line must not
// cost every other frame its module.
func parseMaps(r io.Reader) ([]mapping, error) {
	var maps []mapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024) // paths can be up to PATH_MAX and more
	for sc.Scan() {
		if m, ok := parseMapsLine(sc.Bytes()); ok {
			maps = append(maps, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// The kernel prints mappings in address order; sort anyway, because
	// lookups binary-search and must not depend on that.
	sort.Slice(maps, func(i, j int) bool { return maps[i].start < maps[j].start })
	return maps, nil
}

// parseMapsLine parses "start-end perms offset dev inode   path".
func parseMapsLine(line []byte) (mapping, bool) {
	var m mapping
	var fields [5][]byte
	rest := line
	for i := range fields {
		rest = bytes.TrimLeft(rest, " ")
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		fields[i], rest = rest[:end], rest[end:]
	}
	addrs := bytes.SplitN(fields[0], []byte("-"), 2)
	if len(addrs) != 2 {
		return m, false
	}
	var err1, err2, err3, err4 error
	m.start, err1 = strconv.ParseUint(string(addrs[0]), 16, 64)
	m.end, err2 = strconv.ParseUint(string(addrs[1]), 16, 64)
	m.offset, err3 = strconv.ParseUint(string(fields[2]), 16, 64)
	m.inode, err4 = strconv.ParseUint(string(fields[4]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || m.end <= m.start {
		return m, false
	}
	m.perms = string(fields[1])
	m.dev = string(fields[3])
	// The path is everything after the padding; it may itself contain spaces.
	path := string(bytes.TrimLeft(rest, " "))
	if strings.HasSuffix(path, deletedSuffix) {
		path = strings.TrimSuffix(path, deletedSuffix)
		m.deleted = true
	}
	m.path = path
	return m, true
}

// findMapping returns the index of the mapping containing addr, or -1.
func findMapping(maps []mapping, addr uint64) int {
	i := sort.Search(len(maps), func(i int) bool { return maps[i].end > addr })
	if i < len(maps) && maps[i].start <= addr {
		return i
	}
	return -1
}
