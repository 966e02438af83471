package inproc

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestLibraryDirectory: the shim goes to $TMPDIR/lsan-UID when that is a
// directory of the user's own that nobody else can write, and otherwise
// (a file there, a directory others may write) to a directory of the run
// alone, which release removes.
func TestLibraryDirectory(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the shim is built for x86-64 only")
	}
	shared := func(tmp string) string { return filepath.Join(tmp, fmt.Sprintf("lsan-%d", os.Getuid())) }
	for _, c := range []struct {
		name    string
		prepare func(dir string) error
		private bool
	}{
		{"missing", func(string) error { return nil }, false},
		{"a file", func(dir string) error { return os.WriteFile(dir, nil, 0o644) }, true},
		{"writable by others", func(dir string) error {
			if err := os.Mkdir(dir, 0o755); err != nil {
				return err
			}
			return os.Chmod(dir, 0o777)
		}, true},
		{"a link", func(dir string) error { return os.Symlink(t.TempDir(), dir) }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			if err := c.prepare(shared(tmp)); err != nil {
				t.Fatal(err)
			}
			path, release, err := Library()
			if err != nil {
				t.Fatal(err)
			}
			image, err := os.ReadFile(path)
			if err != nil || len(image) != len(libraryX86) {
				t.Fatalf("%s: %d bytes, %v", path, len(image), err)
			}
			dir := filepath.Dir(path)
			if got := dir != shared(tmp); got != c.private {
				t.Fatalf("library in %s: private %v, want %v", dir, got, c.private)
			}
			release()
			_, err = os.Stat(path)
			if removed := os.IsNotExist(err); removed != c.private {
				t.Errorf("after release: removed %v, want %v", removed, c.private)
			}
		})
	}
}
