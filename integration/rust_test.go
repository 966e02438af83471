package integration

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// TestRustForgottenHashMap: a forgotten HashMap<u32, String> built -O2.
// Its table is a direct leak and its 40 strings (64-byte buffers)
// indirect ones. The smaller tables the map freed while it grew still
// point at strings; scanned as roots they hid 26 of the 40.
func TestRustForgottenHashMap(t *testing.T) {
	requireRoot(t)
	lsan(t)
	rustc, err := exec.LookPath("rustc")
	if err != nil {
		t.Fatal("rustc not found (the CI installs it)")
	}
	bin := filepath.Join(t.TempDir(), "forgotten_hashmap")
	src := filepath.Join(repoRoot, "integration", "testdata", "forgotten_hashmap.rs")
	if out, err := exec.Command(rustc, "-C", "opt-level=2", "-g", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("rustc: %v\n%s", err, out)
	}
	code, stdout, stderr := runLSan(t, nil, "run", "--format", "json", "--", bin)
	if code != 23 {
		t.Fatalf("exit status %d, want 23\n%s", code, stderr)
	}
	reps := jsonReportsIn(t, stdout)
	var direct, indirect expectGroup
	for _, g := range reps[len(reps)-1].Leaks {
		sum := &direct
		if g.Kind == "indirect" {
			sum = &indirect
		}
		sum.Bytes += g.Bytes
		sum.Count += g.Count
	}
	if direct.Count != 1 || indirect.Count != 40 || indirect.Bytes != 40*64 {
		t.Errorf("direct %d object(s), indirect %d object(s) of %d bytes; want 1, and 40 of %d", direct.Count, indirect.Count, indirect.Bytes, 40*64)
	}
}
