package bpf

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/lsan-project/lsan/internal/procmaps"
)

// MappedObject is an ELF file mapped into the target.
type MappedObject struct {
	// Path is the file as the target sees it (from /proc/PID/maps).
	Path string
	// OpenPath is where lsan can open the same file: through
	// /proc/PID/root (containers) or /proc/PID/map_files (deleted files).
	OpenPath string
	// Bias is the load bias: runtime address = ELF virtual address + Bias.
	Bias uint64
	// Start and End bound the object's mappings in the target.
	Start, End uint64

	mappings []mapping
}

// Binding is the definition an allocator function name resolves to in
// the target, the way the dynamic linker would bind it.
type Binding struct {
	Name   string
	Object *MappedObject
	// Value is the symbol's ELF virtual address; FileOffset is where its
	// code lies in the file (what the kernel's uprobe API takes).
	Value, FileOffset, Size uint64
}

// RuntimeAddr is where the function lies in the target.
func (b Binding) RuntimeAddr() uint64 { return b.Value + b.Object.Bias }

type mapping struct {
	start, end, offset uint64
	perms              string
	path               string
	parsed             procmaps.Mapping
}

// ErrNoAllocator means no loaded object defines malloc.
var ErrNoAllocator = errors.New("no malloc found")

// readMappings parses /proc/PID/maps. The path keeps the kernel's
// " (deleted)" mark, which openPathFor looks for.
func readMappings(pid int) ([]mapping, error) {
	parsed, err := procmaps.Read(pid)
	if err != nil {
		return nil, err
	}
	out := make([]mapping, len(parsed))
	for i, m := range parsed {
		out[i] = mapping{start: m.Start, end: m.End, offset: m.Offset, perms: m.Perms, path: m.Printed(), parsed: m}
	}
	return out, nil
}

// mappedObjects groups the file-backed mappings of pid by file, in the
// order the files first appear.
func mappedObjects(pid int) ([]*MappedObject, error) {
	maps, err := readMappings(pid)
	if err != nil {
		return nil, err
	}
	byPath := map[string]*MappedObject{}
	var order []*MappedObject
	for _, m := range maps {
		if !strings.HasPrefix(m.path, "/") {
			continue
		}
		obj := byPath[m.path]
		if obj == nil {
			obj = &MappedObject{Path: m.path, Start: m.start}
			byPath[m.path] = obj
			order = append(order, obj)
		}
		obj.mappings = append(obj.mappings, m)
		if m.end > obj.End {
			obj.End = m.end
		}
	}
	for _, obj := range order {
		obj.OpenPath = openPathFor(pid, obj)
	}
	return order, nil
}

// openPathFor picks a path lsan can open for a file the target mapped:
// through the target's root (containers), as is (chrooted targets), or
// through map_files (deleted or replaced files); procmaps.OpenPath checks
// each against the mapped inode.
func openPathFor(pid int, obj *MappedObject) string {
	return procmaps.OpenPath(pid, obj.mappings[0].parsed)
}

// loadBias computes runtime - ELF vaddr for obj from the mapping of its
// lowest file offset and the PT_LOAD segment covering that offset.
func loadBias(obj *MappedObject, f *elf.File) (uint64, error) {
	m := obj.mappings[0]
	for _, mm := range obj.mappings {
		if mm.offset < m.offset {
			m = mm
		}
	}
	const pageSize = 4096
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		if m.offset >= p.Off&^(pageSize-1) && m.offset < p.Off+p.Filesz {
			// vaddr of file offset o is p.Vaddr + (o - p.Off); unsigned
			// wrap-around makes this right for o below p.Off as well.
			vaddr := p.Vaddr + m.offset - p.Off
			return m.start - vaddr, nil
		}
	}
	return 0, fmt.Errorf("%s: no PT_LOAD segment at file offset %#x", obj.Path, m.offset)
}

// elfInfo is what discovery needs from one object.
type elfInfo struct {
	obj    *MappedObject
	soname string
	needed []string
	static bool
	// hash finds the exported functions by name; where it is nil (no
	// .gnu.hash, or a static executable's .symtab) defined holds them all.
	hash    *gnuHashTable
	defined map[string]elf.Symbol
	file    *elf.File
	// local are the functions of .symtab, local ones included, read on
	// first use: only user-named functions are looked up there.
	local map[string]elf.Symbol
}

// localFunc finds a function in the object's .symtab, where a program
// keeps its static functions (a pool allocator's, typically).
func (e *elfInfo) localFunc(name string) (elf.Symbol, bool) {
	if e.local == nil {
		e.local = map[string]elf.Symbol{}
		syms, _ := e.file.Symbols()
		for _, s := range syms {
			typ := elf.ST_TYPE(s.Info)
			if s.Section != elf.SHN_UNDEF && s.Value != 0 && (typ == elf.STT_FUNC || typ == elf.STT_GNU_IFUNC) {
				if _, dup := e.local[s.Name]; !dup {
					e.local[s.Name] = s
				}
			}
		}
	}
	s, ok := e.local[name]
	return s, ok
}

// readELFInfos reads the objects' ELF information side by side (libc's
// symbol table alone takes milliseconds, and lsan run waits for it with
// the command held): nil where an object is no ELF file, is unreadable,
// or is lsan's in-process recorder, which interposes the allocator (what
// it calls is the real one).
func readELFInfos(objs []*MappedObject) []*elfInfo {
	infos := make([]*elfInfo, len(objs))
	var wg sync.WaitGroup
	for i, obj := range objs {
		if strings.HasPrefix(filepath.Base(obj.Path), RecorderLibraryPrefix) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if info, err := readELFInfo(obj); err == nil {
				infos[i] = info
			}
		}()
	}
	wg.Wait()
	return infos
}

func readELFInfo(obj *MappedObject) (*elfInfo, error) {
	f, err := elf.Open(obj.OpenPath)
	if err != nil {
		return nil, err
	}
	info := &elfInfo{obj: obj, file: f, defined: map[string]elf.Symbol{}}
	if obj.Bias, err = loadBias(obj, f); err != nil {
		f.Close()
		return nil, err
	}
	if sonames, err := f.DynString(elf.DT_SONAME); err == nil && len(sonames) > 0 {
		info.soname = sonames[0]
	}
	info.needed, _ = f.DynString(elf.DT_NEEDED)
	info.static = f.Section(".dynamic") == nil
	if hash, ok := newGNUHashTable(f); ok && !info.static {
		info.hash = hash
		return info, nil
	}
	dyn, _ := f.DynamicSymbols()
	addDefinitions(info.defined, dyn)
	if info.static {
		// A static executable binds every call inside itself; its
		// allocator is known only from .symtab.
		syms, _ := f.Symbols()
		addDefinitions(info.defined, syms)
	}
	return info, nil
}

// definition returns the function the object defines under name.
func (e *elfInfo) definition(name string) (elf.Symbol, bool) {
	if e.hash == nil {
		s, ok := e.defined[name]
		return s, ok
	}
	var def elf.Symbol
	found := false
	e.hash.lookup(name, func(s elf.Symbol) {
		if isDefinition(s) && (!found || replaces(def)) {
			def, found = s, true
		}
	})
	return def, found
}

// addDefinitions keeps the global or weak functions that the object
// defines (not the undefined references to other objects).
func addDefinitions(into map[string]elf.Symbol, syms []elf.Symbol) {
	for _, s := range syms {
		if !isDefinition(s) {
			continue
		}
		if old, ok := into[s.Name]; ok && !replaces(old) {
			continue
		}
		into[s.Name] = s
	}
}

// isDefinition tells whether s is a global or weak function the object
// defines.
func isDefinition(s elf.Symbol) bool {
	typ, bind := elf.ST_TYPE(s.Info), elf.ST_BIND(s.Info)
	return s.Section != elf.SHN_UNDEF && s.Value != 0 &&
		(typ == elf.STT_FUNC || typ == elf.STT_GNU_IFUNC) &&
		(bind == elf.STB_GLOBAL || bind == elf.STB_WEAK)
}

// replaces tells whether a later definition of the same name takes the
// place of old: only a weak one gives way.
func replaces(old elf.Symbol) bool { return elf.ST_BIND(old.Info) != elf.STB_GLOBAL }

// searchOrder orders objects the way the dynamic linker searches them for
// a symbol: the executable, LD_PRELOAD libraries, then DT_NEEDED
// dependencies breadth first; objects loaded later (dlopen) come last.
func searchOrder(exe *elfInfo, preload []string, all []*elfInfo) []*elfInfo {
	var order []*elfInfo
	seen := map[*elfInfo]bool{}
	add := func(e *elfInfo) {
		if e != nil && !seen[e] {
			seen[e] = true
			order = append(order, e)
		}
	}
	byName := func(name string) *elfInfo {
		for _, e := range all {
			if matchesObject(e, name) {
				return e
			}
		}
		return nil
	}
	add(exe)
	for _, p := range preload {
		add(byName(p))
	}
	for i := 0; i < len(order); i++ {
		for _, n := range order[i].needed {
			add(byName(n))
		}
	}
	for _, e := range all {
		add(e)
	}
	return order
}

// preloadList returns the LD_PRELOAD libraries of the target, from its
// environment and from /etc/ld.so.preload inside its root.
func preloadList(pid int) []string {
	var out []string
	if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil {
		for _, kv := range bytes.Split(env, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte("LD_PRELOAD=")); ok {
				out = append(out, strings.FieldsFunc(string(v), func(r rune) bool { return r == ' ' || r == ':' })...)
			}
		}
	}
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/ld.so.preload", pid)); err == nil {
		out = append(out, strings.Fields(string(data))...)
	}
	return out
}

// RecorderLibraryPrefix starts the file name of lsan run's in-process
// recorder (package inproc), which discovery passes over.
const RecorderLibraryPrefix = "liblsan-inproc"

// Allocator is the result of discovery: where each allocator function of
// the target is defined.
type Allocator struct {
	// Bindings by function name, for the names that resolved.
	Bindings map[string]Binding
	// Objects are all ELF objects mapped in the target.
	Objects []*MappedObject
}

// Primary is the object that defines malloc: what stderr names.
func (a *Allocator) Primary() *MappedObject { return a.Bindings["malloc"].Object }

// DiscoverAllocator resolves every function of funcs as the target's
// dynamic linker binds it. When override is set, only that file is
// searched (a path as the target sees it, or a file name such as
// libjemalloc.so.2) for the default functions; user-named functions are
// looked up as bindFunc says.
func DiscoverAllocator(pid int, funcs []AllocatorFunc, override string) (*Allocator, error) {
	objs, err := mappedObjects(pid)
	if err != nil {
		return nil, fmt.Errorf("read mappings of pid %d: %w", pid, err)
	}
	exePath, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	var infos []*elfInfo
	var exe *elfInfo
	for i, info := range readELFInfos(objs) {
		if info == nil {
			continue // not an ELF file (a mapped data file), unreadable, or lsan's recorder
		}
		defer info.file.Close()
		infos = append(infos, info)
		obj := objs[i]
		if obj.Path == exePath || strings.TrimSuffix(obj.Path, " (deleted)") == strings.TrimSuffix(exePath, " (deleted)") {
			exe = info
		}
	}
	all := searchOrder(exe, preloadList(pid), infos)
	order := all
	if override != "" {
		order = filterOverride(order, override)
		if len(order) == 0 {
			return nil, fmt.Errorf("--allocator %s: no such object is mapped in pid %d", override, pid)
		}
	}
	alloc := &Allocator{Bindings: map[string]Binding{}, Objects: objs}
	for _, fn := range funcs {
		var b Binding
		var ok bool
		if fn.Family == familyUser {
			b, ok = bindUserFunc(all, fn)
		} else {
			b, ok = bind(order, fn.Name)
		}
		if ok {
			alloc.Bindings[fn.Name] = b
		}
	}
	if _, ok := alloc.Bindings["malloc"]; !ok {
		return nil, fmt.Errorf("pid %d: %w in any loaded object (stripped static binary? use --allocator)", pid, ErrNoAllocator)
	}
	return alloc, nil
}

func filterOverride(order []*elfInfo, override string) []*elfInfo {
	var out []*elfInfo
	for _, e := range order {
		if matchesObject(e, override) {
			out = append(out, e)
		}
	}
	return out
}

// matchesObject tells whether name (a DT_NEEDED entry, an LD_PRELOAD
// entry or an --allocator value: a path, possibly a symlink such as
// libtcmalloc.so.4, or a bare file name) names the mapped object e.
func matchesObject(e *elfInfo, name string) bool {
	base := filepath.Base(name)
	if e.obj.Path == name || e.soname == base || filepath.Base(e.obj.Path) == base {
		return true
	}
	if !strings.Contains(name, "/") {
		return false
	}
	// A path through a symlink: compare what both resolve to, inside the
	// target's root.
	root := strings.TrimSuffix(e.obj.OpenPath, e.obj.Path)
	resolved, err := filepath.EvalSymlinks(root + name)
	if err != nil {
		return false
	}
	mapped, err := filepath.EvalSymlinks(e.obj.OpenPath)
	return err == nil && resolved == mapped
}

// bind finds the first object in order that defines name.
func bind(order []*elfInfo, name string) (Binding, bool) {
	for _, e := range order {
		s, ok := e.definition(name)
		if !ok {
			continue
		}
		if elf.ST_TYPE(s.Info) == elf.STT_GNU_IFUNC {
			// The symbol is the resolver, not the function; probing it
			// would record nothing.
			return Binding{}, false
		}
		off, ok := fileOffset(e.file, s.Value)
		if !ok {
			return Binding{}, false
		}
		return Binding{Name: name, Object: e.obj, Value: s.Value, FileOffset: off, Size: s.Size}, true
	}
	return Binding{}, false
}

// bindUserFunc finds a function the user named: in the object named with
// it, else in search order; an exported definition first, then any
// function of that name in .symtab (static functions included), since a
// program's own pool allocator is rarely exported.
func bindUserFunc(order []*elfInfo, fn AllocatorFunc) (Binding, bool) {
	if fn.Object != "" {
		order = filterOverride(order, fn.Object)
	}
	if b, ok := bind(order, fn.Name); ok {
		return b, true
	}
	for _, e := range order {
		s, ok := e.localFunc(fn.Name)
		if !ok || elf.ST_TYPE(s.Info) == elf.STT_GNU_IFUNC {
			continue
		}
		if off, ok := fileOffset(e.file, s.Value); ok {
			return Binding{Name: fn.Name, Object: e.obj, Value: s.Value, FileOffset: off, Size: s.Size}, true
		}
	}
	return Binding{}, false
}

// fileOffset converts an ELF virtual address of code to its file offset.
func fileOffset(f *elf.File, vaddr uint64) (uint64, bool) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && vaddr >= p.Vaddr && vaddr < p.Vaddr+p.Filesz {
			return vaddr - p.Vaddr + p.Off, true
		}
	}
	return 0, false
}
