package symbolize

import (
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Options configure a Symbolizer.
type Options struct {
	// DebugDirs are extra directories searched for separate debug info,
	// before /usr/lib/debug, with the same layout: .build-id/xx/yyyy.debug
	// and, for .gnu_debuglink, DIR/<object's directory>/<link name> (and
	// DIR/<link name>).
	DebugDirs []string
	// NoDemangle keeps raw (mangled) C++ and Rust names.
	NoDemangle bool
}

// Symbolizer turns addresses of processes into frames. It is meant to be
// long-lived: the objects it has read (symbols, DWARF indexes, answers)
// are cached across snapshots and processes, keyed by build-id, or by
// file identity (device, inode, size, modification time) for objects
// without one.
//
// A Symbolizer and the Processes it made are not safe for concurrent use:
// use them from one goroutine at a time.
type Symbolizer struct {
	opts     Options
	pageSize uint64
	byFile   map[fileKey]*module // nil: the file is not an ELF object we can use
	byID     map[string]*module  // by build-id
	roots    map[fileKey]rootFS  // pinned root directories of containers
}

// New returns a Symbolizer.
func New(opts Options) *Symbolizer {
	opts.DebugDirs = append([]string(nil), opts.DebugDirs...)
	return &Symbolizer{
		opts:     opts,
		pageSize: uint64(os.Getpagesize()),
		byFile:   map[fileKey]*module{},
		byID:     map[string]*module{},
		roots:    map[fileKey]rootFS{},
	}
}

// Close releases the files and memory held by the caches. The Symbolizer
// and its Processes must not be used afterwards.
func (s *Symbolizer) Close() error {
	seen := map[*module]bool{}
	for _, m := range s.byFile {
		if m != nil && !seen[m] {
			seen[m] = true
			m.close()
		}
	}
	for _, m := range s.byID {
		if !seen[m] {
			seen[m] = true
			m.close()
		}
	}
	for _, r := range s.roots {
		closeRoot(r)
	}
	s.byFile, s.byID, s.roots = map[fileKey]*module{}, map[string]*module{}, map[fileKey]rootFS{}
	return nil
}

// Process is the address space of a process as captured by Snapshot. It
// keeps answering after the process has exited: every mapped object was
// opened when the snapshot was taken.
type Process struct {
	pid  int
	maps []mapping
	mods []*module // parallel to maps; nil when not a usable ELF mapping
	bias []uint64  // parallel to maps
	// ids are the recorded build-ids of a process rebuilt by FromModules
	// (parallel to maps; nil for live snapshots): a module not found
	// still names the debug info to look for.
	ids []string
}

// Module describes the mapped object containing an address.
type Module struct {
	// Path is the object's path as the target sees it (inside its
	// container, if any), without the kernel's " (deleted)" suffix; a
	// pseudo-name such as "[vdso]" for kernel-provided mappings.
	Path string
	// Start and End delimit the mapping holding the address; Offset is the
	// file offset mapped at Start.
	Start, End, Offset uint64
	// Bias is the load bias: run-time address = ELF virtual address + Bias
	// (0 for non-PIE executables). Valid when ELF is true.
	Bias uint64
	// ELF is true when the mapping is a loadable segment of an ELF object
	// lsan could read; BuildID is its GNU build-id in hex ("" if none).
	ELF     bool
	BuildID string
	// Deleted is true when the kernel reports the mapped file deleted
	// (unlinked, or replaced by a rename, after it was mapped); lsan then
	// read it through /proc/PID/map_files.
	Deleted bool
}

// Snapshot captures the mappings of process pid now. Call it while the
// target is stopped, or at check time: addresses are resolved against the
// mappings as they were then. Every mapped ELF object is opened (or found
// in the cache) immediately; their symbols and debug info are read only
// when an address inside them is symbolized.
func (s *Symbolizer) Snapshot(pid int) (*Process, error) {
	maps, err := readMaps(pid)
	if err != nil {
		return nil, err
	}
	p := &Process{pid: pid, maps: maps, mods: make([]*module, len(maps)), bias: make([]uint64, len(maps))}
	root := s.rootOf(pid)
	// The same file is usually mapped 4-5 times (one per segment).
	type fileRef struct {
		path    string
		inode   uint64
		deleted bool
	}
	byRef := map[fileRef]*module{}
	for i := range maps {
		m := &maps[i]
		if !m.fileBacked() {
			continue
		}
		ref := fileRef{m.path, m.inode, m.deleted}
		mod, seen := byRef[ref]
		if !seen {
			mod = s.moduleFor(pid, root, m)
			byRef[ref] = mod
		}
		if mod == nil {
			continue
		}
		if b, ok := mod.obj.bias(m.start, m.offset, s.pageSize); ok {
			p.mods[i], p.bias[i] = mod, b
		}
	}
	return p, nil
}

// moduleFor finds or loads the module mapped by m. The file is reached
// through the target's root (/proc/PID/root, right for containers), by its
// path as is (a target chrooted inside lsan's tree: maps shows the path
// from lsan's root, and prefixing the target's root would apply the chroot
// twice), or through /proc/PID/map_files when it was deleted or replaced
// since it was mapped (then the path no longer leads to the mapped file).
func (s *Symbolizer) moduleFor(pid int, root rootFS, m *mapping) *module {
	viaRoot := fmt.Sprintf("/proc/%d/root%s", pid, m.path)
	viaMapFiles := fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, m.start, m.end)
	candidates := []string{viaRoot, m.path, viaMapFiles}
	if m.deleted {
		candidates = []string{viaMapFiles}
	}
	for _, p := range candidates {
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		key := keyOf(st)
		if key.ino != m.inode {
			continue // not the file that is mapped any more
		}
		if mod, ok := s.byFile[key]; ok {
			return mod
		}
		mod := s.openModule(p, key, m.path, root)
		s.byFile[key] = mod
		return mod
	}
	return nil
}

// openModule opens an object not seen before, or recognises by build-id
// an object already loaded from another path (another container, a
// reinstalled file).
func (s *Symbolizer) openModule(p string, key fileKey, targetPath string, root rootFS) *module {
	obj, err := openELFFile(p)
	if err != nil {
		return nil
	}
	if len(obj.buildID) > 0 {
		if mod, ok := s.byID[obj.buildIDHex()]; ok {
			obj.close()
			return mod
		}
	}
	search := debugSearch{targetPath: targetPath, root: root, dirs: s.opts.DebugDirs, self: key}
	mod := newModule(obj, search, &s.opts)
	if len(obj.buildID) > 0 {
		s.byID[obj.buildIDHex()] = mod
	}
	return mod
}

// rootOf returns the root directory process pid sees. For a process in
// another mount namespace (a container) the root directory is opened and
// kept, so files and debug info can still be found after the process
// has exited.
func (s *Symbolizer) rootOf(pid int) rootFS {
	rootPath := fmt.Sprintf("/proc/%d/root", pid)
	st, err := os.Stat(rootPath)
	if err != nil {
		return rootFS{prefix: rootPath}
	}
	if ours, err := os.Stat("/"); err == nil && os.SameFile(st, ours) {
		return rootFS{}
	}
	key := keyOf(st)
	key.size, key.mtime = 0, 0 // a directory's mtime changes with its entries
	if r, ok := s.roots[key]; ok {
		return r
	}
	fd, err := unix.Open(rootPath, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return rootFS{prefix: rootPath}
	}
	r := rootFS{prefix: fmt.Sprintf("/proc/self/fd/%d", fd)}
	s.roots[key] = r
	return r
}

func closeRoot(r rootFS) {
	var fd int
	if _, err := fmt.Sscanf(r.prefix, "/proc/self/fd/%d", &fd); err == nil {
		unix.Close(fd)
	}
}

// Symbolize returns the frames for one PC, innermost first: a PC inside
// inlined code expands into one frame per inlined call, then the function
// they were inlined into. pc is the exact address to look up (callers
// subtract 1 from return addresses). It never fails: an address in a
// mapping without symbols yields one frame with Module and ModuleOffset,
// an address outside every mapping one frame with just PC.
func (p *Process) Symbolize(pc uint64) []Frame {
	i := findMapping(p.maps, pc)
	if i < 0 {
		return []Frame{{PC: pc}}
	}
	m := &p.maps[i]
	mod := p.mods[i]
	if mod == nil {
		f := Frame{PC: pc, Module: displayPath(m), ModuleOffset: pc - m.start + m.offset}
		if p.ids != nil {
			f.BuildID = p.ids[i]
		}
		return []Frame{f}
	}
	vaddr := pc - p.bias[i]
	loc := mod.frames(vaddr)
	out := make([]Frame, len(loc))
	buildID := ""
	if len(mod.obj.buildID) > 0 {
		buildID = mod.obj.buildIDHex()
	}
	for k, f := range loc {
		f.PC, f.Module, f.ModuleOffset, f.BuildID = pc, m.path, vaddr, buildID
		out[k] = f
	}
	return out
}

// Module returns the mapped object containing pc.
func (p *Process) Module(pc uint64) (Module, bool) {
	i := findMapping(p.maps, pc)
	if i < 0 {
		return Module{}, false
	}
	return p.moduleAt(i), true
}

// Modules lists the mappings of executable code, in address order.
func (p *Process) Modules() []Module {
	var out []Module
	for i := range p.maps {
		if p.maps[i].executable() {
			out = append(out, p.moduleAt(i))
		}
	}
	return out
}

// PID is the process the snapshot was taken of.
func (p *Process) PID() int { return p.pid }

func (p *Process) moduleAt(i int) Module {
	m := &p.maps[i]
	out := Module{Path: displayPath(m), Start: m.start, End: m.end, Offset: m.offset, Deleted: m.deleted}
	if mod := p.mods[i]; mod != nil {
		out.ELF, out.Bias = true, p.bias[i]
		out.BuildID = hex.EncodeToString(mod.obj.buildID)
	}
	return out
}

// displayPath is the module name for a mapping: its path, a pseudo-name
// like [vdso], or "" for anonymous memory.
func displayPath(m *mapping) string {
	if strings.HasPrefix(m.path, "/") || strings.HasPrefix(m.path, "[") {
		return m.path
	}
	return ""
}
