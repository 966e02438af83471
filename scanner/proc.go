package scanner

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/lsan-project/lsan/internal/procmaps"
)

// procRoot is where procfs is mounted.
const procRoot = "/proc"

// listTasks returns the thread ids of process pid.
func listTasks(pid int) ([]int, error) {
	dir := fmt.Sprintf("%s/%d/task", procRoot, pid)
	f, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("list threads of pid %d: %w", pid, ErrTargetExited)
		}
		return nil, fmt.Errorf("list threads of pid %d: %w", pid, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("list threads of pid %d: %w", pid, ErrTargetExited)
		}
		return nil, fmt.Errorf("list threads of pid %d: %w", pid, err)
	}
	tids := make([]int, 0, len(names))
	for _, n := range names {
		if tid, err := strconv.Atoi(n); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// taskStatus is what /proc/PID/task/TID/status says about a thread.
type taskStatus struct {
	State     byte // R, S, D, T, t, Z, X, …
	Tgid      int
	PPid      int
	TracerPID int
}

// readTaskStatus reads /proc/PID/task/TID/status (or /proc/PID/status when
// tid is 0).
func readTaskStatus(pid, tid int) (taskStatus, error) {
	path := fmt.Sprintf("%s/%d/status", procRoot, pid)
	if tid != 0 {
		path = fmt.Sprintf("%s/%d/task/%d/status", procRoot, pid, tid)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return taskStatus{}, err
	}
	return parseStatus(data), nil
}

// parseStatus extracts State, Tgid and TracerPid from a status file.
func parseStatus(data []byte) taskStatus {
	var st taskStatus
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		key, val, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		val = bytes.TrimSpace(val)
		switch string(key) {
		case "State":
			if len(val) > 0 {
				st.State = val[0]
			}
		case "Tgid":
			st.Tgid, _ = strconv.Atoi(string(val))
		case "PPid":
			st.PPid, _ = strconv.Atoi(string(val))
		case "TracerPid":
			st.TracerPID, _ = strconv.Atoi(string(val))
		}
	}
	return st
}

// threadGone tells whether a thread no longer runs code: it has exited
// (its status file is gone) or is a zombie or dead.
func threadGone(pid, tid int) bool {
	st, err := readTaskStatus(pid, tid)
	if err != nil {
		return true
	}
	return st.State == 'Z' || st.State == 'X'
}

// processGone tells whether the whole process has exited.
func processGone(pid int) bool {
	st, err := readTaskStatus(pid, 0)
	if err != nil {
		return true
	}
	if st.State != 'Z' && st.State != 'X' {
		return false
	}
	// A zombie leader with live threads (the main thread called
	// pthread_exit) is still a running process.
	tids, err := listTasks(pid)
	if err != nil {
		return true
	}
	for _, tid := range tids {
		if tid != pid && !threadGone(pid, tid) {
			return false
		}
	}
	return true
}

// mapping is one line of /proc/PID/maps.
type mapping struct {
	start, end uint64
	perms      string // "rw-p"
	offset     uint64
	dev        string // "fd:01"
	inode      uint64
	path       string
}

func (m mapping) readable() bool { return len(m.perms) > 0 && m.perms[0] == 'r' }
func (m mapping) writable() bool { return len(m.perms) > 1 && m.perms[1] == 'w' }
func (m mapping) shared() bool   { return len(m.perms) > 3 && m.perms[3] == 's' }

// anonymous tells whether the mapping has no file behind it: plain
// anonymous memory, a named one (PR_SET_VMA_ANON_NAME), or the main
// thread's stack.
func (m mapping) anonymous() bool {
	return m.path == "" || strings.HasPrefix(m.path, "[anon:") || strings.HasPrefix(m.path, "[stack")
}

// readMaps reads /proc/PID/maps.
func readMaps(pid int) ([]mapping, error) {
	data, err := os.ReadFile(fmt.Sprintf("%s/%d/maps", procRoot, pid))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errESRCH) {
			return nil, fmt.Errorf("read mappings of pid %d: %w", pid, ErrTargetExited)
		}
		return nil, fmt.Errorf("read mappings of pid %d: %w", pid, err)
	}
	maps, err := parseMaps(data)
	if err != nil {
		return nil, fmt.Errorf("read mappings of pid %d: %w", pid, err)
	}
	if len(maps) == 0 {
		// A process that has exited (zombie) has no mappings left.
		return nil, fmt.Errorf("read mappings of pid %d: no mappings: %w", pid, ErrTargetExited)
	}
	return maps, nil
}

// parseMaps parses the text of /proc/PID/maps with the shared parser; a
// line it cannot parse fails the whole list, since the scanner must not
// miss a region that may hold pointers.
func parseMaps(data []byte) ([]mapping, error) {
	parsed, err := procmaps.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("maps %w", err)
	}
	maps := make([]mapping, len(parsed))
	for i, m := range parsed {
		maps[i] = mapping{start: m.Start, end: m.End, perms: m.Perms, offset: m.Offset,
			dev: m.Dev, inode: m.Inode, path: m.Printed()}
	}
	return maps, nil
}
