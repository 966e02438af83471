package inproc

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"

	"github.com/lsan-project/lsan/bpf"
)

// The shim, built by `make inproc` (shim/Makefile) from shim/lsan_inproc.c
// and committed, so that `go build` alone gives a working tool.
//
//go:embed liblsan-inproc-x86_64.so
var libraryX86 []byte

// libraryName is the file the shim is written to: the bpf package's
// discovery passes over files so named.
func libraryName(image []byte) string {
	sum := sha256.Sum256(image)
	return fmt.Sprintf("%s-%s.so", bpf.RecorderLibraryPrefix, hex.EncodeToString(sum[:6]))
}

// Library writes the shim where the started command can load it and
// returns its path, and a function that removes what only this run uses.
// The shim goes to a directory of the user's own in the temporary
// directory (shared by every lsan run of that user, readable by any user
// the command may switch to); where that path is not such a directory
// (made by someone else, or not a directory), to a directory of this run
// alone. An existing copy with the same contents is reused.
func Library() (path string, release func(), err error) {
	if runtime.GOARCH != "amd64" {
		return "", nil, errors.New("the in-process recorder is built for x86-64 only")
	}
	release = func() {}
	dir, err := sharedLibraryDir()
	if err != nil {
		if dir, err = os.MkdirTemp("", "lsan-run-"); err != nil {
			return "", nil, fmt.Errorf("in-process recorder: %w", err)
		}
		private := dir
		os.Chmod(private, 0o755) // for a command that runs as another user
		release = func() { os.RemoveAll(private) }
	}
	path, err = writeLibrary(dir, libraryX86)
	if err != nil {
		release()
		return "", nil, fmt.Errorf("in-process recorder: %w", err)
	}
	return path, release, nil
}

// sharedLibraryDir returns $TMPDIR/lsan-UID, made if missing, when it is a
// directory (not a link) of this user that nobody else can write: a file
// planted there by another user would be loaded into the command.
func sharedLibraryDir() (string, error) {
	uid := os.Getuid()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("lsan-%d", uid))
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != uid || fi.Mode().Perm()&0o022 != 0 {
		return "", fmt.Errorf("%s is not a private directory of uid %d", dir, uid)
	}
	return dir, nil
}

// writeLibrary puts image in dir under its content's name, renamed into
// place so that a command starting meanwhile never maps a half-written
// file.
func writeLibrary(dir string, image []byte) (string, error) {
	path := filepath.Join(dir, libraryName(image))
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, image) {
		return path, nil
	}
	tmp, err := os.CreateTemp(dir, ".shim-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(image)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	return path, err
}

// funcOffsets are the file-relative addresses (ELF values) of the shim's
// interposed functions, by name, to name a block's allocator frame.
func funcOffsets() (map[string]uint64, error) {
	f, err := elf.NewFile(bytes.NewReader(libraryX86))
	if err != nil {
		return nil, err
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
			out[s.Name] = s.Value
		}
	}
	return out, nil
}
