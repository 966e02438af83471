package suppressions

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// lsanToolchain is a clang that builds working -fsanitize=leak programs.
type lsanToolchain struct {
	cc, cxx string
}

var (
	probeOnce   sync.Once
	probedTC    *lsanToolchain
	probeReason string
)

// needLSan returns the toolchain for tests that compare with the real
// LeakSanitizer. Without clang or its LSan runtime the test is skipped,
// unless the CI environment variable is set: CI must run the comparison,
// so there it fails instead.
func needLSan(t *testing.T) *lsanToolchain {
	t.Helper()
	probeOnce.Do(probeLSan)
	if probedTC != nil {
		return probedTC
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set but real LSan is unavailable: %s", probeReason)
	}
	t.Skipf("real LSan unavailable (%s); set CI to make this a failure", probeReason)
	return nil
}

// probeLSan builds and runs a leak-free program with -fsanitize=leak, which
// fails when clang, the runtime, or ptrace (LSan's StopTheWorld) is missing.
func probeLSan() {
	tc := &lsanToolchain{}
	for _, tool := range []struct {
		name string
		dst  *string
	}{{"clang", &tc.cc}, {"clang++", &tc.cxx}} {
		path, err := exec.LookPath(tool.name)
		if err != nil {
			probeReason = tool.name + " not found"
			return
		}
		*tool.dst = path
	}
	dir, err := os.MkdirTemp("", "lsan-probe")
	if err != nil {
		probeReason = err.Error()
		return
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "probe.c")
	bin := filepath.Join(dir, "probe")
	if err := os.WriteFile(src, []byte("#include <stdlib.h>\nint main(void) { free(malloc(1)); return 0; }\n"), 0o644); err != nil {
		probeReason = err.Error()
		return
	}
	if out, err := exec.Command(tc.cc, "-fsanitize=leak", src, "-o", bin).CombinedOutput(); err != nil {
		probeReason = "clang -fsanitize=leak fails: " + string(out)
		return
	}
	if out, err := exec.Command(bin).CombinedOutput(); err != nil {
		probeReason = "an LSan program fails to run: " + string(out)
		return
	}
	probedTC = tc
}

// run executes a build command in dir and fails the test on error.
func (tc *lsanToolchain) run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
