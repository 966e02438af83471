package integration

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSmallInodeLibc: a libc on a fresh tmpfs has an inode number (2, 3…)
// that also appears inside the mapping's address. The maps parser must
// find the library by field position, not by searching for the inode.
func TestSmallInodeLibc(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	libc := filepath.Join(dir, "libc.so.6")
	copyFile(t, "/lib/x86_64-linux-gnu/libc.so.6", libc)
	var st syscall.Stat_t
	if err := syscall.Stat(libc, &st); err != nil {
		t.Fatal(err)
	}
	if st.Ino > 9 {
		t.Fatalf("tmpfs gave libc inode %d; the test needs a one-digit inode", st.Ino)
	}

	var ex example
	for _, e := range loadExamples(t) {
		if e.Name == "malloc" {
			ex = e
		}
	}
	ex.Run.Env = map[string]string{"LD_LIBRARY_PATH": dir}
	p := startExample(t, ex)
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(maps), libc) {
		t.Fatalf("the example did not map %s:\n%s", libc, maps)
	}
	a := attach(t, p.Pid(), "--format", "json", "-i", "1h")
	p.trigger(t)
	code := a.stop(t)
	reps := parseReports(t, a.stdout.String())
	got := groupsByFunction(reps[len(reps)-1], true)
	want := normalize(ex.Leaks, true)
	if d := diffGroups(got, want); d != "" {
		t.Errorf("lsan vs expected.json:\n%s\n%s", d, a.stderr.String())
	}
	if code != 23 {
		t.Errorf("exit status %d, want 23", code)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
