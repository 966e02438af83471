package symbolize

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// want is one expected frame: function name and the marker of its line.
type want struct {
	function string
	marker   string
}

// site is an address a test program printed, and what it must symbolize to.
type site struct {
	name       string
	returnAddr bool // a return address (or rip after an instruction): look up pc-1
	frames     []want
}

func (s site) pc(tg *target) uint64 {
	if s.returnAddr {
		return tg.addrs[s.name] - 1
	}
	return tg.addrs[s.name]
}

// checkSite symbolizes one site of a live program and checks every frame
// against the expectation, exactly, and against addr2line and
// llvm-symbolizer run on the same module offset.
func checkSite(t *testing.T, p *Process, tg *target, bin, src string, s site, opts compareOpts) {
	t.Helper()
	pc := s.pc(tg)
	got := p.Symbolize(pc)
	lines := markers(t, src)
	if len(got) != len(s.frames) {
		t.Fatalf("%s: got %d frames %+v, want %d", s.name, len(got), got, len(s.frames))
	}
	for i, w := range s.frames {
		g := got[i]
		wantLine, ok := lines[w.marker]
		if !ok {
			t.Fatalf("no LINE:%s marker in %s", w.marker, src)
		}
		if g.Function != w.function || g.File != testdataPath(t, src) || g.Line != wantLine {
			t.Errorf("%s frame %d: got %s %s:%d, want %s %s:%d", s.name, i, g.Function, g.File, g.Line,
				w.function, testdataPath(t, src), wantLine)
		}
		if g.Column == 0 && !opts.noColumns {
			t.Errorf("%s frame %d: no column", s.name, i)
		}
		if g.Inlined != (i < len(s.frames)-1) {
			t.Errorf("%s frame %d: Inlined=%v", s.name, i, g.Inlined)
		}
		if g.PC != pc || g.Module != bin {
			t.Errorf("%s frame %d: PC %#x module %q, want %#x %q", s.name, i, g.PC, g.Module, pc, bin)
		}
	}
	if opts.toolModule != "" {
		bin = opts.toolModule
	}
	compareWithTools(t, bin, got, opts)
}

// compareOpts says which parts of the answers the external tools are
// expected to agree on.
type compareOpts struct {
	noColumns        bool   // the compiler emits no columns there
	a2lOuterNameOnly bool   // addr2line names inlined frames after their caller (its bug, C++)
	llvmNoNames      bool   // llvm-symbolizer names the outer frame from the symbol table (clones, Rust hashes)
	toolModule       string // the file to run the tools on, when not the module itself (stripped modules)
	noAddr2line      bool   // addr2line cannot read this DWARF
}

// compareWithTools checks frames against addr2line -f -i -C and
// llvm-symbolizer for the same module offset.
func compareWithTools(t *testing.T, module string, got []Frame, opts compareOpts) {
	t.Helper()
	off := got[0].ModuleOffset
	ours := toolView(got)
	a2l := ours
	if !opts.noAddr2line {
		a2l = addr2line(t, module, []uint64{off})[0]
	}
	if len(a2l) != len(ours) {
		t.Fatalf("offset %#x: addr2line says %v, we say %v", off, a2l, ours)
	}
	for i := range a2l {
		sameName := a2l[i].Function == ours[i].Function || (opts.a2lOuterNameOnly && i < len(a2l)-1)
		if !sameName || a2l[i].File != ours[i].File || a2l[i].Line != ours[i].Line {
			t.Errorf("offset %#x frame %d: addr2line says %v, we say %v", off, i, a2l[i], ours[i])
		}
	}
	llvm := llvmSymbolizer(t, module, []uint64{off})[0]
	if len(llvm) != len(ours) {
		t.Fatalf("offset %#x: llvm-symbolizer says %v, we say %v", off, llvm, ours)
	}
	for i := range llvm {
		sameName := llvm[i].Function == ours[i].Function || opts.llvmNoNames
		if !sameName || llvm[i].File != ours[i].File || llvm[i].Line != ours[i].Line || llvm[i].Column != ours[i].Column {
			t.Errorf("offset %#x frame %d: llvm-symbolizer says %v, we say %v", off, i, llvm[i], ours[i])
		}
	}
}

// cSites are the sites prog.c prints, for optimized and unoptimized builds.
// entry is the line of quokka_direct's first instruction: its opening line,
// except for gcc -O2, whose last row at that address is the body's (the
// row llvm-symbolizer and addr2line pick too).
func cSites(optimized bool, entry string) []site {
	inlined := []want{{"wombat_inline", "inline_call"}}
	if optimized {
		inlined = append(inlined, want{"quokka_outer", "outer_call"})
	}
	return []site{
		{name: "direct_site", returnAddr: true, frames: []want{{"quokka_direct", "direct_call"}}},
		{name: "inlined_site", returnAddr: true, frames: inlined},
		{name: "direct_entry", frames: []want{{"quokka_direct", entry}}},
	}
}

func TestC(t *testing.T) {
	cases := []struct {
		name      string
		cc        string
		flags     []string
		optimized bool
		pie       bool
		noColumns bool
	}{
		{"gcc-O0", "gcc", []string{"-O0", "-g"}, false, true, false},
		{"gcc-O2", "gcc", []string{"-O2", "-g"}, true, true, false},
		{"gcc-O2-nopie", "gcc", []string{"-O2", "-g", "-fno-pie", "-no-pie"}, true, false, false},
		{"gcc-O0-nopie", "gcc", []string{"-O0", "-g", "-fno-pie", "-no-pie"}, false, false, false},
		{"gcc-O2-dwarf4", "gcc", []string{"-O2", "-gdwarf-4"}, true, true, false},
		{"gcc-O2-dwarf5", "gcc", []string{"-O2", "-gdwarf-5"}, true, true, false},
		{"gcc-O2-gz", "gcc", []string{"-O2", "-g", "-gz=zlib"}, true, true, false},
		{"gcc-O2-zdebug", "gcc", []string{"-O2", "-g", "-gz=zlib-gnu"}, true, true, false},
		{"clang-O0", "clang", []string{"-O0", "-g"}, false, true, true},
		{"clang-O2-dwarf4", "clang", []string{"-O2", "-gdwarf-4"}, true, true, true},
		{"clang-O2-dwarf5", "clang", []string{"-O2", "-gdwarf-5"}, true, true, true},
		{"clang-O2-dwarf5-gz", "clang", []string{"-O2", "-gdwarf-5", "-gz"}, true, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			bin := compile(t, t.TempDir(), c.cc, "prog.c", "prog", c.flags...)
			tg := start(t, bin)
			p, err := New(Options{}).Snapshot(tg.pid())
			if err != nil {
				t.Fatal(err)
			}
			// clang puts no column on a function's first row.
			entry := "direct_entry"
			if c.cc == "gcc" && c.optimized {
				entry = "direct_call"
			}
			for _, s := range cSites(c.optimized, entry) {
				opts := compareOpts{noColumns: c.noColumns && s.name == "direct_entry"}
				checkSite(t, p, tg, bin, "prog.c", s, opts)
			}
			checkBias(t, p, tg, bin, c.pie)
			checkMalloc(t, p, tg)
		})
	}
}

// checkBias checks Module(): a PIE is loaded at its first mapping (its
// first PT_LOAD has vaddr 0), a non-PIE executable at its link address.
func checkBias(t *testing.T, p *Process, tg *target, bin string, pie bool) {
	t.Helper()
	pc := tg.addrs["direct_entry"]
	m, ok := p.Module(pc)
	if !ok || m.Path != bin || !m.ELF || m.BuildID == "" {
		t.Fatalf("Module(%#x) = %+v, %v", pc, m, ok)
	}
	wantBias := uint64(0)
	if pie {
		wantBias = firstMapping(t, tg.pid(), bin)
	}
	if m.Bias != wantBias {
		t.Errorf("bias %#x, want %#x", m.Bias, wantBias)
	}
	if f := p.Symbolize(pc); f[0].ModuleOffset != pc-wantBias {
		t.Errorf("module offset %#x, want %#x", f[0].ModuleOffset, pc-wantBias)
	}
}

// firstMapping reads the lowest address at which path is mapped.
func firstMapping(t *testing.T, pid int, path string) uint64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasSuffix(sc.Text(), " "+path) {
			v, err := strconv.ParseUint(strings.SplitN(sc.Text(), "-", 2)[0], 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("%s not mapped in %d", path, pid)
	return 0
}

// checkMalloc symbolizes malloc's address in the target's libc. With
// glibc's debug info (libc6-dbg) the name is DWARF's, __libc_malloc (the
// function's DW_AT_name in malloc.c); without it, .dynsym offers malloc
// and __libc_malloc at that address, and the public name wins.
func checkMalloc(t *testing.T, p *Process, tg *target) {
	t.Helper()
	pc := tg.addrs["malloc"]
	m, ok := p.Module(pc)
	if !ok || !strings.Contains(filepath.Base(m.Path), "libc.so") {
		t.Fatalf("malloc at %#x is in %+v", pc, m)
	}
	want := "malloc"
	if libcHasDebugInfo(t, m.Path) {
		want = "__libc_malloc"
	}
	got := p.Symbolize(pc)
	last := got[len(got)-1]
	if last.Function != want || last.Module != m.Path || last.ModuleOffset != pc-m.Bias {
		t.Errorf("malloc: got %+v, want %s in %s+%#x", got, want, m.Path, pc-m.Bias)
	}
	if want == "__libc_malloc" && !strings.HasSuffix(last.File, "/malloc.c") {
		t.Errorf("malloc: file %q, want malloc.c", last.File)
	}
	a2l := addr2line(t, m.Path, []uint64{last.ModuleOffset})[0]
	ours := toolView(got)
	if a2l[len(a2l)-1].File != ours[len(ours)-1].File || a2l[len(a2l)-1].Line != ours[len(ours)-1].Line {
		t.Errorf("malloc: addr2line says %v, we say %v", a2l, ours)
	}
}

func libcHasDebugInfo(t testing.TB, libc string) bool {
	obj, err := openELFFile(libc)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.close()
	_, err = os.Stat(buildIDPath(defaultDebugDir, obj.buildID))
	return err == nil
}

func TestCxx(t *testing.T) {
	for _, cc := range []string{"g++", "clang++"} {
		for _, noDemangle := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s-nodemangle=%v", cc, noDemangle), func(t *testing.T) {
				t.Parallel()
				bin := compile(t, t.TempDir(), cc, "prog.cpp", "prog", "-O2", "-g")
				tg := start(t, bin)
				p, err := New(Options{NoDemangle: noDemangle}).Snapshot(tg.pid())
				if err != nil {
					t.Fatal(err)
				}
				names := map[string]string{
					"store_int":    "zoo::Keeper<int>::store(int)",
					"store_nested": "zoo::Keeper<zoo::Keeper<int> >::store(int)",
					"visit":        "visit<int>",
					"tour":         "zoo::tour(int*)",
				}
				if cc == "clang++" {
					// clang records the linkage name of internal functions too.
					names["visit"] = "void* zoo::visit<int>(int*)"
				}
				if noDemangle {
					names = map[string]string{
						"store_int":    "_ZN3zoo6KeeperIiE5storeEi",
						"store_nested": "_ZN3zoo6KeeperINS0_IiEEE5storeEi",
						"visit":        "visit<int>",
						"tour":         "_ZN3zoo4tourEPi",
					}
					if cc == "clang++" {
						names["visit"] = "_ZN3zooL5visitIiEEPvPT_"
					}
				}
				sites := []site{
					{name: "store_int", returnAddr: true, frames: []want{{names["store_int"], "store_call"}}},
					{name: "store_nested", returnAddr: true, frames: []want{{names["store_nested"], "store_call"}}},
					{name: "tour", returnAddr: true, frames: []want{{names["visit"], "visit_call"}, {names["tour"], "tour_call"}}},
				}
				for _, s := range sites {
					opts := compareOpts{
						// addr2line names an inlined frame after its caller (and
						// does not print raw names); llvm-symbolizer 14 names the
						// outer frame from the symbol table (".isra.0" clones).
						a2lOuterNameOnly: true,
						llvmNoNames:      noDemangle || cc == "g++",
					}
					if noDemangle {
						opts.a2lOuterNameOnly = false
						checkSiteNoTools(t, p, tg, bin, "prog.cpp", s)
						continue
					}
					checkSite(t, p, tg, bin, "prog.cpp", s, opts)
				}
			})
		}
	}
}

// checkSiteNoTools checks a site against the expectation only (the tools
// always demangle: -C for addr2line, its default for llvm-symbolizer).
func checkSiteNoTools(t *testing.T, p *Process, tg *target, bin, src string, s site) {
	t.Helper()
	got := p.Symbolize(s.pc(tg))
	lines := markers(t, src)
	if len(got) != len(s.frames) {
		t.Fatalf("%s: got %+v, want %d frames", s.name, got, len(s.frames))
	}
	for i, w := range s.frames {
		if got[i].Function != w.function || got[i].Line != lines[w.marker] {
			t.Errorf("%s frame %d: got %s:%d, want %s:%d", s.name, i, got[i].Function, got[i].Line, w.function, lines[w.marker])
		}
	}
}

func TestRust(t *testing.T) {
	cases := []struct {
		name  string
		flags []string
		v0    bool
	}{
		{"O0-legacy", []string{"-g"}, false},
		{"O2-legacy", []string{"-g", "-C", "opt-level=2"}, false},
		{"O0-v0", []string{"-g", "-C", "symbol-mangling-version=v0"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			bin := compile(t, t.TempDir(), "rustc", "prog.rs", "prog", c.flags...)
			tg := start(t, bin)
			p, err := New(Options{}).Snapshot(tg.pid())
			if err != nil {
				t.Fatal(err)
			}
			store := "prog::zoo::Keeper::store" // legacy: the hash suffix is dropped
			if c.v0 {
				store = "<prog::zoo::Keeper>::store"
			}
			sites := []site{
				{name: "store", returnAddr: true, frames: []want{{store, "rust_store"}}},
				{name: "tour", returnAddr: true, frames: []want{{"prog::zoo::visit", "rust_visit"}, {"prog::zoo::tour", "rust_tour"}}},
			}
			for _, s := range sites {
				// llvm-symbolizer 14 keeps the hash of legacy Rust names.
				checkSite(t, p, tg, bin, "prog.rs", s, compareOpts{llvmNoNames: !c.v0})
			}
			// Raw names are the mangled linkage names.
			raw, err := New(Options{NoDemangle: true}).Snapshot(tg.pid())
			if err != nil {
				t.Fatal(err)
			}
			f := raw.Symbolize(sites[0].pc(tg))
			prefix := "_ZN4prog3zoo6Keeper5store17h"
			if c.v0 {
				prefix = "_RNvMNtCs"
			}
			if len(f) != 1 || !strings.HasPrefix(f[0].Function, prefix) {
				t.Errorf("raw name %+v, want prefix %s", f, prefix)
			}
		})
	}
}

// TestLibcAliases symbolizes glibc's allocator entry points from its
// .dynsym alone (the debug-file search disabled), where each has aliases
// at its address (malloc/__libc_malloc, free/cfree/__libc_free): the
// public names win.
func TestLibcAliases(t *testing.T) {
	libc := "/lib/x86_64-linux-gnu/libc.so.6"
	if _, err := os.Stat(libc); err != nil {
		t.Skipf("no %s: %v", libc, err)
	}
	obj, err := openELFFile(libc)
	if err != nil {
		t.Fatal(err)
	}
	m := newModule(obj, debugSearch{disabled: true}, &Options{})
	defer m.close()
	dyn, err := obj.f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	addr := map[string]uint64{}
	for _, s := range dyn {
		addr[s.Name] = s.Value
	}
	for _, name := range []string{"malloc", "free", "calloc", "realloc"} {
		a, ok := addr[name]
		if !ok {
			t.Fatalf("%s not in .dynsym", name)
		}
		got := m.frames(a)
		if len(got) != 1 || got[0].Function != name || got[0].File != "" {
			t.Errorf("%s at %#x: got %+v", name, a, got)
		}
		if got := m.frames(a + 3); got[0].Function != name {
			t.Errorf("%s+3: got %+v", name, got)
		}
	}
}
