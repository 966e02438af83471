package symbolize

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/lsan-project/lsan/internal/procmaps"
)

// mapping is one line of /proc/PID/maps.
type mapping struct {
	start, end uint64
	offset     uint64 // file offset mapped at start
	perms      string // "r-xp" etc.
	dev        string // "fd:01"
	inode      uint64
	path       string // as the target sees it, without " (deleted)"
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

// parseMaps parses the /proc/PID/maps format with the shared parser.
// Lines it cannot parse are skipped rather than failing the whole
// snapshot: one odd line must not cost every other frame its module.
func parseMaps(r io.Reader) ([]mapping, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	parsed, _ := procmaps.Parse(data) // sorted by address; bad lines skipped
	maps := make([]mapping, len(parsed))
	for i, m := range parsed {
		maps[i] = mapping{start: m.Start, end: m.End, offset: m.Offset, perms: m.Perms,
			dev: m.Dev, inode: m.Inode, path: m.Path, deleted: m.Deleted}
	}
	return maps, nil
}

// findMapping returns the index of the mapping containing addr, or -1.
func findMapping(maps []mapping, addr uint64) int {
	i := sort.Search(len(maps), func(i int) bool { return maps[i].end > addr })
	if i < len(maps) && maps[i].start <= addr {
		return i
	}
	return -1
}
