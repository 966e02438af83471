package symbolize

import (
	"debug/elf"
	"fmt"
	"os"
	"syscall"

	"github.com/ianlancetaylor/demangle"
)

// fileKey identifies a file's contents cheaply: a file replaced in place
// gets a new size or modification time, one replaced by rename a new inode.
type fileKey struct {
	dev, ino uint64
	size     int64
	mtime    int64 // nanoseconds
}

func keyOf(st os.FileInfo) fileKey {
	k := fileKey{size: st.Size(), mtime: st.ModTime().UnixNano()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		k.dev, k.ino = sys.Dev, sys.Ino
	}
	return k
}

// maxMemoEntries bounds the per-module cache of symbolized addresses.
const maxMemoEntries = 1 << 18

// module is one ELF object (executable or shared library) and everything
// derived from it. Modules are shared across processes and snapshots by
// build-id. Symbols and DWARF are loaded on the first lookup in the module.
type module struct {
	obj    *elfObject
	search debugSearch
	opts   *Options

	loaded    bool
	debugObj  *elfObject // separate debug file used, if any
	debugPath string
	errs      []error      // why some information is missing (diagnostics)
	syms      *symbolTable // see symbols
	symsDone  bool
	dwarf     *dwarfIndex
	extra     []*elfObject // debug and dwz files kept open for the module's life

	memo      map[uint64][]Frame // by ELF virtual address
	demangled map[string]string
}

func newModule(obj *elfObject, search debugSearch, opts *Options) *module {
	return &module{obj: obj, search: search, opts: opts}
}

// frames symbolizes an ELF virtual address of this module: Function,
// File, Line, Column and Inlined are filled; the caller adds PC and the
// module's name and offset. The result is shared: callers copy it.
func (m *module) frames(vaddr uint64) []Frame {
	if f, ok := m.memo[vaddr]; ok {
		return f
	}
	m.load()
	f := m.lookup(vaddr)
	if m.memo == nil || len(m.memo) >= maxMemoEntries {
		m.memo = map[uint64][]Frame{}
	}
	m.memo[vaddr] = f
	return f
}

// lookup symbolizes through DWARF, then the symbol table. A panic on
// malformed DWARF the decoder did not catch falls back to symbols.
func (m *module) lookup(vaddr uint64) (frames []Frame) {
	defer func() {
		if r := recover(); r != nil {
			m.errs = append(m.errs, fmt.Errorf("lookup %#x: panic: %v", vaddr, r))
			m.dwarf = nil // do not trust it again
			frames = m.symbolFrame(vaddr)
		}
	}()
	if m.dwarf != nil {
		if dfs := m.dwarf.lookup(vaddr); len(dfs) > 0 {
			return m.dwarfFrames(vaddr, dfs)
		}
	}
	return m.symbolFrame(vaddr)
}

func (m *module) dwarfFrames(vaddr uint64, dfs []dwarfFrame) []Frame {
	out := make([]Frame, len(dfs))
	for i, df := range dfs {
		out[i] = Frame{File: df.file, Line: int(df.line), Column: int(df.col), Inlined: df.inlined}
		if df.name != "" {
			out[i].Function = m.displayName(df.name)
		}
	}
	// DWARF without a subprogram for the address (assembly files, for
	// instance) still has the symbol table's name for the outer frame.
	if last := &out[len(out)-1]; last.Function == "" {
		if s, ok := m.symbols().lookup(vaddr); ok {
			last.Function = m.displayName(s.name)
		}
	}
	return out
}

func (m *module) symbolFrame(vaddr uint64) []Frame {
	if s, ok := m.symbols().lookup(vaddr); ok {
		return []Frame{{Function: m.displayName(s.name)}}
	}
	return []Frame{{}}
}

// displayName demangles C++ and Rust names (unless disabled); names that
// are not mangled, such as C functions, come back unchanged.
func (m *module) displayName(raw string) string {
	if m.opts.NoDemangle {
		return raw
	}
	if d, ok := m.demangled[raw]; ok {
		return d
	}
	d := demangleName(raw)
	if m.demangled == nil {
		m.demangled = map[string]string{}
	}
	m.demangled[raw] = d
	return d
}

// demangleName renders a mangled name as llvm-symbolizer (and therefore
// LeakSanitizer) does: qualified name with parameter types, and nested
// templates closed as "> >", as llvm-symbolizer 14 and c++filt print them.
// Rust legacy names lose their hash suffix, as with rustc-demangle.
func demangleName(raw string) string {
	if !isMangled(raw) {
		return raw
	}
	if s, ok := demangleRustLegacy(raw); ok {
		return s
	}
	s, err := demangle.ToString(raw)
	if err != nil {
		return raw
	}
	return s
}

// load finds the module's debug info and indexes its DWARF, once. The
// symbol tables are read later, if a lookup needs them (no DWARF, or no
// function there): with full debug info they rarely are.
func (m *module) load() {
	if m.loaded {
		return
	}
	m.loaded = true
	dwarfObj := m.obj
	if !m.obj.hasDWARF() {
		m.debugObj = m.separateDebugFile()
		dwarfObj = m.debugObj
	}
	if dwarfObj != nil && dwarfObj.hasDWARF() {
		m.loadDWARF(dwarfObj)
	}
}

// symbols returns the merged symbol tables, reading them on first use.
func (m *module) symbols() *symbolTable {
	if !m.symsDone {
		m.symsDone = true
		m.load()
		m.loadSymbols(m.debugObj)
	}
	return m.syms
}

// separateDebugFile finds the object's debug file by build-id, else by
// .gnu_debuglink.
func (m *module) separateDebugFile() (obj *elfObject) {
	defer m.recoverInto("find debug file", func() { obj = nil })
	if dbg, p := m.search.findByBuildID(m.obj.buildID); dbg != nil {
		m.keep(dbg, p)
		return dbg
	}
	link := m.obj.section(".gnu_debuglink", 4096)
	if name, crc, ok := parseDebugLink(link, m.obj.f.ByteOrder); ok {
		if dbg, p := m.search.findByDebugLink(name, crc); dbg != nil {
			m.keep(dbg, p)
			return dbg
		}
	}
	return nil
}

func (m *module) keep(obj *elfObject, p string) {
	m.extra = append(m.extra, obj)
	if m.debugPath == "" {
		m.debugPath = p
	}
}

// loadSymbols merges every symbol table available: the object's .symtab
// and .dynsym, the debug file's .symtab, and MiniDebugInfo.
func (m *module) loadSymbols(dbg *elfObject) {
	defer m.recoverInto("load symbols", nil)
	var lists [][]symbol
	add := func(syms []symbol, err error) {
		if err != nil {
			m.errs = append(m.errs, err)
		}
		lists = append(lists, syms)
	}
	add(readFunctionSymbols(m.obj, elf.SHT_SYMTAB))
	add(readFunctionSymbols(m.obj, elf.SHT_DYNSYM))
	if dbg != nil && dbg != m.obj {
		add(readFunctionSymbols(dbg, elf.SHT_SYMTAB))
	}
	add(miniDebugInfo(m.obj))
	m.syms = newSymbolTable(lists...)
}

// loadDWARF decodes the unit headers of obj's DWARF and indexes units by
// address; the rest is decoded per unit on demand.
func (m *module) loadDWARF(obj *elfObject) {
	defer m.recoverInto("load DWARF", func() { m.dwarf = nil })
	sec, err := loadDWARFSections(obj)
	if err != nil {
		m.errs = append(m.errs, fmt.Errorf("load DWARF: %w", err))
		return
	}
	d, err := newDwarfData(sec, obj.f.ByteOrder)
	if err != nil {
		m.errs = append(m.errs, fmt.Errorf("load DWARF: %w", err))
		return
	}
	d.alt = m.altDWARF(obj)
	m.dwarf = newDwarfIndex(d)
}

// altDWARF loads the dwz supplementary file, if obj refers to one.
func (m *module) altDWARF(obj *elfObject) (d *dwarfData) {
	defer m.recoverInto("load dwz file", func() { d = nil })
	link, id, ok := parseAltLink(obj.section(".gnu_debugaltlink", 4096))
	if !ok {
		return nil
	}
	debugPath := m.debugPath
	if debugPath == "" {
		debugPath = m.search.root.path(m.search.targetPath)
	}
	alt, p := m.search.findAltFile(link, id, debugPath)
	if alt == nil {
		m.errs = append(m.errs, fmt.Errorf("dwz file %s not found", link))
		return nil
	}
	m.extra = append(m.extra, alt)
	sec, err := loadDWARFSections(alt)
	if err != nil {
		m.errs = append(m.errs, fmt.Errorf("dwz file %s: %w", p, err))
		return nil
	}
	d, err = newDwarfData(sec, alt.f.ByteOrder)
	if err != nil {
		m.errs = append(m.errs, fmt.Errorf("dwz file %s: %w", p, err))
		return nil
	}
	return d
}

// recoverInto turns a panic in a loading step into a recorded error (and
// runs reset), so a hostile file costs only that step.
func (m *module) recoverInto(step string, reset func()) {
	if r := recover(); r != nil {
		m.errs = append(m.errs, fmt.Errorf("%s: panic: %v", step, r))
		if reset != nil {
			reset()
		}
	}
}

// close releases the files the module holds open.
func (m *module) close() {
	m.obj.close()
	for _, o := range m.extra {
		o.close()
	}
}

// openFileModule loads an object from a path on this machine, outside
// any process (tests, benchmarks and tools that symbolize files).
func openFileModule(p string, opts *Options) (*module, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	obj, err := openELFFile(p)
	if err != nil {
		return nil, err
	}
	return newModule(obj, debugSearch{targetPath: p, dirs: opts.DebugDirs, self: keyOf(st)}, opts), nil
}
