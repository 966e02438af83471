package symbolize

import (
	"debug/elf"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// A recording read on another machine: the binary is gone from its
// recorded path, its debug info is in a --debug-dir under its build-id.
func TestFromModulesByBuildID(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "off.c")
	os.WriteFile(src, []byte("int offline_leaker(int x)\n{\n\treturn x * 3;\n}\nint main(void) { return offline_leaker(1); }\n"), 0o644)
	requireTool(t, "gcc")
	bin := filepath.Join(dir, "off")
	run(t, dir, "gcc", "-g", "-O0", "-Wl,--build-id", "-o", bin, src)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	syms, _ := f.Symbols()
	var fn uint64
	for _, s := range syms {
		if s.Name == "offline_leaker" {
			fn = s.Value
		}
	}
	f.Close()
	obj, err := openELFFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(obj.buildID)
	obj.close()
	debugDir := filepath.Join(dir, "debug")
	dbg := filepath.Join(debugDir, ".build-id", id[:2], id[2:]+".debug")
	os.MkdirAll(filepath.Dir(dbg), 0o755)
	run(t, dir, "objcopy", "--only-keep-debug", bin, dbg)
	os.Remove(bin)

	const bias = 0x555555554000
	mods := []Module{{Path: bin, BuildID: id, Start: bias + fn&^0xfff, End: bias + fn&^0xfff + 0x1000, Offset: fn &^ 0xfff, Bias: bias, ELF: true}}
	s := New(Options{DebugDirs: []string{debugDir}})
	defer s.Close()
	frames := s.FromModules(1, mods).Symbolize(bias + fn + 4)
	if len(frames) != 1 {
		t.Fatalf("frames %+v", frames)
	}
	got := frames[0]
	if got.Function != "offline_leaker" || got.File != src || got.Line != 2 || got.Module != bin || got.ModuleOffset != fn+4 || got.BuildID != id {
		t.Errorf("frame %+v, want offline_leaker %s:2 in %s+%#x (%s)", got, src, bin, fn+4, id)
	}

	// Without the debug dir: module, offset and build-id only.
	s2 := New(Options{})
	defer s2.Close()
	frames = s2.FromModules(1, mods).Symbolize(bias + fn + 4)
	if f := frames[0]; f.Function != "" || f.Module != bin || f.ModuleOffset != fn+4 || f.BuildID != id {
		t.Errorf("no debug info: %+v", f)
	}
}
