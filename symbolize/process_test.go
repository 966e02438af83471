package symbolize

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestParseMaps(t *testing.T) {
	in := `55d0c8e00000-55d0c8e01000 r--p 00000000 fe:00 1234                       /usr/bin/app
55d0c8e01000-55d0c8e02000 r-xp 00001000 fe:00 1234                       /usr/bin/app
7f00000000-7f00001000 r-xp 00002000 08:01 99 /opt/my app/lib with spaces.so (deleted)
7ffd000000-7ffd021000 rw-p 00000000 00:00 0                          [stack]
7f10000000-7f10001000 rw-p 00000000 00:00 0
garbage line
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
`
	maps, err := parseMaps(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	// In address order, whatever the order of the lines.
	want := []mapping{
		{start: 0x7f00000000, end: 0x7f00001000, offset: 0x2000, perms: "r-xp", dev: "08:01", inode: 99, path: "/opt/my app/lib with spaces.so", deleted: true},
		{start: 0x7f10000000, end: 0x7f10001000, perms: "rw-p", dev: "00:00"},
		{start: 0x7ffd000000, end: 0x7ffd021000, perms: "rw-p", dev: "00:00", path: "[stack]"},
		{start: 0x55d0c8e00000, end: 0x55d0c8e01000, perms: "r--p", dev: "fe:00", inode: 1234, path: "/usr/bin/app"},
		{start: 0x55d0c8e01000, end: 0x55d0c8e02000, offset: 0x1000, perms: "r-xp", dev: "fe:00", inode: 1234, path: "/usr/bin/app"},
		{start: 0xffffffffff600000, end: 0xffffffffff601000, perms: "--xp", dev: "00:00", path: "[vsyscall]"},
	}
	if len(maps) != len(want) {
		t.Fatalf("got %d mappings: %+v", len(maps), maps)
	}
	for i := range want {
		if maps[i] != want[i] {
			t.Errorf("mapping %d: got %+v, want %+v", i, maps[i], want[i])
		}
	}
	if i := findMapping(maps, 0x55d0c8e01fff); i != 4 {
		t.Errorf("findMapping: %d", i)
	}
	if i := findMapping(maps, 0x55d0c8e02000); i != -1 {
		t.Errorf("findMapping past the end: %d", i)
	}
}

// TestUnknownAddresses: addresses outside any mapping, and in mappings
// without a file, still give one frame.
func TestUnknownAddresses(t *testing.T) {
	bin := compile(t, t.TempDir(), "gcc", "prog.c", "prog", "-O2", "-g")
	tg := start(t, bin)
	p, err := New(Options{}).Snapshot(tg.pid())
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Symbolize(0x10); len(got) != 1 || got[0] != (Frame{PC: 0x10}) {
		t.Errorf("unmapped: got %+v", got)
	}
	if _, ok := p.Module(0x10); ok {
		t.Error("Module found for an unmapped address")
	}
	var stack *mapping
	for i := range p.maps {
		if p.maps[i].path == "[stack]" {
			stack = &p.maps[i]
		}
	}
	if stack == nil {
		t.Fatal("no [stack] mapping")
	}
	pc := stack.start + 0x18
	want := Frame{PC: pc, Module: "[stack]", ModuleOffset: 0x18}
	if got := p.Symbolize(pc); len(got) != 1 || got[0] != want {
		t.Errorf("stack: got %+v, want %+v", got, want)
	}
}

// TestCacheAcrossProcesses: two processes of one program share the loaded
// module (by build-id), and a snapshot keeps answering after its process
// exited.
func TestCacheAcrossProcesses(t *testing.T) {
	bin := compile(t, t.TempDir(), "gcc", "prog.c", "prog", "-O2", "-g")
	s := New(Options{})
	defer s.Close()
	tg1, tg2 := start(t, bin), start(t, bin)
	p1, err := s.Snapshot(tg1.pid())
	if err != nil {
		t.Fatal(err)
	}
	p2, err := s.Snapshot(tg2.pid())
	if err != nil {
		t.Fatal(err)
	}
	pc1, pc2 := tg1.addrs["direct_site"]-1, tg2.addrs["direct_site"]-1
	f1 := p1.Symbolize(pc1)
	m1 := p1.mods[findMapping(p1.maps, pc1)]
	m2 := p2.mods[findMapping(p2.maps, pc2)]
	if m1 == nil || m1 != m2 {
		t.Fatalf("modules not shared: %p %p", m1, m2)
	}
	if !m1.loaded {
		t.Fatal("module not loaded by the first lookup")
	}
	tg2.stdin.Close()
	tg2.cmd.Wait()
	f2 := p2.Symbolize(pc2)
	if len(f1) != 1 || len(f2) != 1 || f1[0].Function != f2[0].Function || f1[0].Line != f2[0].Line || f2[0].Function != "quokka_direct" {
		t.Errorf("after exit: %+v vs %+v", f2, f1)
	}
	if _, err := s.Snapshot(tg2.pid()); err == nil {
		t.Error("Snapshot of an exited process succeeded")
	}
}

// TestGo symbolizes a Go program: the Go linker writes DWARF 5 line
// tables whose paths are inline strings (DW_FORM_string), which C
// compilers do not.
func TestGo(t *testing.T) {
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		goTool = requireTool(t, "go")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "goprog")
	cmd := exec.Command(goTool, "build", "-o", bin, testdataPath(t, "goprog.go"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tg := start(t, bin)
	p, err := New(Options{}).Snapshot(tg.pid())
	if err != nil {
		t.Fatal(err)
	}
	s := site{name: "callers", returnAddr: true, frames: []want{{"main.where", "go_callers"}}}
	// binutils 2.40's addr2line answers "go.go:?" for Go's DWARF 5.
	checkSite(t, p, tg, bin, "goprog.go", s, compareOpts{noColumns: true, noAddr2line: true})
}
