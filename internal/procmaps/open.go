package procmaps

import (
	"fmt"
	"os"
	"syscall"
)

// OpenPath returns a path under which lsan can open the file behind m, a
// mapping of process pid. The path in /proc/PID/maps is relative to the
// reader's root where the file is reachable from it (a chrooted target
// shows "/srv/jail/lib/libc.so.6"), and relative to the target's mount
// namespace where it is not (a container shows "/lib/libc.so.6"). So the
// candidates are tried in turn, and the first whose inode is the mapped
// one wins:
//
//   - /proc/PID/root + path: a container, or a process sharing lsan's root;
//   - path as it is: a process chrooted inside lsan's file tree (prefixing
//     its root would apply the chroot twice);
//   - /proc/PID/map_files/START-END: the mapped file itself, deleted or
//     replaced files included (needs CAP_SYS_ADMIN or
//     CAP_CHECKPOINT_RESTORE).
//
// When none matches, the first candidate is returned, so that the error
// the caller gets names a path.
func OpenPath(pid int, m Mapping) string {
	viaRoot := fmt.Sprintf("/proc/%d/root%s", pid, m.Path)
	viaMapFiles := fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, m.Start, m.End)
	candidates := []string{viaRoot, m.Path, viaMapFiles}
	if m.Deleted {
		candidates = []string{viaMapFiles}
	}
	for _, p := range candidates {
		if p != "" && sameInode(p, m.Inode) {
			return p
		}
	}
	return candidates[0]
}

// sameInode reports whether path is a regular file with inode ino.
func sameInode(path string, ino uint64) bool {
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && sys.Ino == ino
}
