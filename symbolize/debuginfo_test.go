package symbolize

import (
	"os"
	"path/filepath"
	"testing"
)

// strippedBuild is a program built with debug info, its debug info split
// off (objcopy --only-keep-debug) and a fully stripped copy.
type strippedBuild struct {
	dir      string
	full     string // the original, with DWARF and symbols
	debug    string // only the debug info
	stripped string // no DWARF, no .symtab
	buildID  []byte
}

func buildStripped(t *testing.T, flags ...string) strippedBuild {
	t.Helper()
	requireTool(t, "objcopy")
	requireTool(t, "strip")
	dir := t.TempDir()
	b := strippedBuild{dir: dir}
	b.full = compile(t, dir, "gcc", "prog.c", "full", append([]string{"-g"}, flags...)...)
	b.debug = filepath.Join(dir, "full.debug")
	run(t, dir, "objcopy", "--only-keep-debug", b.full, b.debug)
	b.stripped = filepath.Join(dir, "app")
	run(t, dir, "strip", "--strip-all", "-o", b.stripped, b.full)
	obj, err := openELFFile(b.stripped)
	if err != nil {
		t.Fatal(err)
	}
	b.buildID = obj.buildID
	obj.close()
	if len(b.buildID) == 0 {
		t.Fatal("the toolchain did not give the program a build-id")
	}
	return b
}

// addDebugLink makes a copy of the stripped program whose .gnu_debuglink
// names debugName, with the CRC of the file at debugPath.
func (b strippedBuild) addDebugLink(t *testing.T, debugPath, out string) string {
	t.Helper()
	// objcopy records the base name and computes the CRC from the file.
	run(t, filepath.Dir(debugPath), "objcopy", "--add-gnu-debuglink="+filepath.Base(debugPath), b.stripped, out)
	return out
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}

// checkFullyResolved runs bin and checks that its sites resolve with
// functions, files and lines, as the unstripped build does for the tools.
func checkFullyResolved(t *testing.T, b strippedBuild, bin string, opts Options) {
	t.Helper()
	tg := start(t, bin)
	p, err := New(opts).Snapshot(tg.pid())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cSites(true, "direct_call") {
		checkSite(t, p, tg, bin, "prog.c", s, compareOpts{toolModule: b.full})
	}
}

func TestSeparateDebugInfo(t *testing.T) {
	b := buildStripped(t, "-O2")

	t.Run("build-id", func(t *testing.T) {
		dbgDir := t.TempDir()
		copyFile(t, b.debug, buildIDPath(dbgDir, b.buildID))
		checkFullyResolved(t, b, b.stripped, Options{DebugDirs: []string{dbgDir}})
	})

	t.Run("debuglink-beside", func(t *testing.T) {
		dir := t.TempDir()
		copyFile(t, b.debug, filepath.Join(dir, "app.debug"))
		bin := b.addDebugLink(t, filepath.Join(dir, "app.debug"), filepath.Join(dir, "app"))
		checkFullyResolved(t, b, bin, Options{})
	})

	t.Run("debuglink-dot-debug", func(t *testing.T) {
		dir := t.TempDir()
		copyFile(t, b.debug, filepath.Join(dir, ".debug", "app.debug"))
		bin := b.addDebugLink(t, filepath.Join(dir, ".debug", "app.debug"), filepath.Join(dir, "app"))
		checkFullyResolved(t, b, bin, Options{})
	})

	t.Run("debuglink-debug-dir", func(t *testing.T) {
		dir, dbgDir := t.TempDir(), t.TempDir()
		linkDir := t.TempDir()
		copyFile(t, b.debug, filepath.Join(linkDir, "app.debug"))
		bin := b.addDebugLink(t, filepath.Join(linkDir, "app.debug"), filepath.Join(dir, "app"))
		// GDB's layout: DEBUGDIR/<the object's directory>/<link name>.
		copyFile(t, b.debug, filepath.Join(dbgDir, dir, "app.debug"))
		checkFullyResolved(t, b, bin, Options{DebugDirs: []string{dbgDir}})
	})

	t.Run("debuglink-crc-mismatch", func(t *testing.T) {
		dir := t.TempDir()
		copyFile(t, b.debug, filepath.Join(dir, "app.debug"))
		bin := b.addDebugLink(t, filepath.Join(dir, "app.debug"), filepath.Join(dir, "app"))
		// Another build's debug info under the linked name must be refused.
		other := buildStripped(t, "-O0")
		copyFile(t, other.debug, filepath.Join(dir, "app.debug"))
		tg := start(t, bin)
		p, err := New(Options{}).Snapshot(tg.pid())
		if err != nil {
			t.Fatal(err)
		}
		pc := tg.addrs["direct_site"] - 1
		m, _ := p.Module(pc)
		got := p.Symbolize(pc)
		want := []Frame{{PC: pc, Module: bin, ModuleOffset: pc - m.Bias, BuildID: m.BuildID}}
		if len(got) != 1 || got[0] != want[0] {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
}

// TestMiniDebugInfo builds a stripped program carrying .gnu_debugdata: an
// xz-compressed ELF file with only a .symtab, as Fedora ships them.
func TestMiniDebugInfo(t *testing.T) {
	requireTool(t, "xz")
	b := buildStripped(t, "-O2")
	mini := filepath.Join(b.dir, "mini")
	run(t, b.dir, "objcopy", "--only-keep-debug", b.full, mini)
	run(t, b.dir, "objcopy", "--strip-debug", "--remove-section=.comment", mini)
	run(t, b.dir, "xz", "-k", mini)
	bin := filepath.Join(b.dir, "app-mini")
	run(t, b.dir, "objcopy", "--add-section", ".gnu_debugdata="+mini+".xz", b.stripped, bin)

	tg := start(t, bin)
	p, err := New(Options{}).Snapshot(tg.pid())
	if err != nil {
		t.Fatal(err)
	}
	for name, fn := range map[string]string{"direct_site": "quokka_direct", "inlined_site": "quokka_outer"} {
		pc := tg.addrs[name] - 1
		m, _ := p.Module(pc)
		got := p.Symbolize(pc)
		want := Frame{PC: pc, Function: fn, Module: bin, ModuleOffset: pc - m.Bias, BuildID: m.BuildID}
		if len(got) != 1 || got[0] != want {
			t.Errorf("%s: got %+v, want %+v", name, got, want)
		}
	}
}

// TestDeletedFile symbolizes a program whose file was deleted after it
// started: it is read through /proc/PID/map_files.
func TestDeletedFile(t *testing.T) {
	dir := t.TempDir()
	bin := compile(t, dir, "gcc", "prog.c", "prog", "-O2", "-g")
	keep := filepath.Join(dir, "prog.orig")
	copyFile(t, bin, keep)
	tg := start(t, bin)
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{}).Snapshot(tg.pid())
	if err != nil {
		t.Fatal(err)
	}
	m, ok := p.Module(tg.addrs["direct_entry"])
	if !ok || !m.Deleted || m.Path != bin || !m.ELF {
		t.Fatalf("Module = %+v, %v; want deleted %s", m, ok, bin)
	}
	for _, s := range cSites(true, "direct_call") {
		checkSite(t, p, tg, bin, "prog.c", s, compareOpts{toolModule: keep})
	}
}

// TestContainerRoot runs a static program the way a container runtime
// does: in its own mount namespace, with its root directory pivoted to a
// directory that also holds its debug info. /proc/PID/maps then shows
// "/prog", which only /proc/PID/root leads to; the files must stay
// reachable after the program exits.
func TestContainerRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mount namespaces need root")
	}
	for _, tool := range []string{"unshare", "mount", "pivot_root", "sh"} {
		requireTool(t, tool)
	}
	b := buildStripped(t, "-O2", "-static", "-DSTATIC")
	root := t.TempDir()
	copyFile(t, b.stripped, filepath.Join(root, "prog"))
	copyFile(t, b.debug, buildIDPath(filepath.Join(root, defaultDebugDir), b.buildID))

	// unshare without --fork and sh's exec keep the started process's pid.
	script := `mount --bind "$0" "$0" && cd "$0" && mkdir .old && pivot_root . .old && exec /prog`
	tg := start(t, "unshare", "--mount", "--propagation", "private", "sh", "-c", script, root)
	s := New(Options{})
	defer s.Close()
	p, err := s.Snapshot(tg.pid())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.roots) != 1 {
		t.Fatalf("the container's root was not pinned: %v", s.roots)
	}
	pcs := map[string]uint64{}
	for _, s := range cSites(true, "direct_call") {
		pcs[s.name] = s.pc(tg)
	}
	// The target exits before anything is symbolized: the snapshot holds
	// the files open and the container's root pinned.
	tg.stdin.Close()
	if err := tg.cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	lines := markers(t, "prog.c")
	for _, s := range cSites(true, "direct_call") {
		got := p.Symbolize(pcs[s.name])
		if len(got) != len(s.frames) {
			t.Fatalf("%s: got %+v", s.name, got)
		}
		for i, w := range s.frames {
			g := got[i]
			if g.Function != w.function || g.Line != lines[w.marker] || g.Module != "/prog" {
				t.Errorf("%s frame %d: got %+v, want %s line %d in /prog", s.name, i, g, w.function, lines[w.marker])
			}
		}
	}
	// malloc is in the static program itself.
	if got := p.Symbolize(tg.addrs["malloc"]); got[len(got)-1].Function != "__libc_malloc" && got[len(got)-1].Function != "malloc" {
		t.Errorf("malloc: got %+v", got)
	}
}

// TestDwz: dwz -m moves DIEs shared by several programs (here the
// abstract instance of the inlined function, and names) into a common
// file that .gnu_debugaltlink names; DW_FORM_GNU_ref_alt and
// DW_FORM_GNU_strp_alt point into it.
func TestDwz(t *testing.T) {
	requireTool(t, "dwz")
	dir := t.TempDir()
	a := compile(t, dir, "gcc", "prog.c", "a", "-O2", "-g")
	b := compile(t, dir, "gcc", "prog.c", "b", "-O2", "-g", "-DSTATIC")
	orig := filepath.Join(dir, "a.orig")
	copyFile(t, a, orig)
	common := filepath.Join(dir, "common.debug")
	run(t, dir, "dwz", "-m", common, "-M", common, a, b)
	obj, err := openELFFile(a)
	if err != nil {
		t.Fatal(err)
	}
	link := obj.section(".gnu_debugaltlink", 4096)
	obj.close()
	if len(link) == 0 {
		t.Fatal("dwz did not add .gnu_debugaltlink")
	}
	tg := start(t, a)
	p, err := New(Options{}).Snapshot(tg.pid())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cSites(true, "direct_call") {
		checkSite(t, p, tg, a, "prog.c", s, compareOpts{toolModule: orig})
	}
}
