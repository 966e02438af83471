package inproc

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

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

// libraryDir holds the written shim: one file per build of it, shared by
// every lsan run, readable by any user the command may switch to.
var libraryDir = filepath.Join(os.TempDir(), "lsan")

// Library writes the shim where the started command can load it and
// returns its path. An existing copy with the same contents is reused.
func Library() (string, error) {
	if runtime.GOARCH != "amd64" {
		return "", errors.New("the in-process recorder is built for x86-64 only")
	}
	image := libraryX86
	path := filepath.Join(libraryDir, libraryName(image))
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, image) {
		return path, nil
	}
	if err := os.MkdirAll(libraryDir, 0o755); err != nil {
		return "", fmt.Errorf("in-process recorder: %w", err)
	}
	tmp, err := os.CreateTemp(libraryDir, ".shim-*")
	if err != nil {
		return "", fmt.Errorf("in-process recorder: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(image); err != nil {
		tmp.Close()
		return "", fmt.Errorf("in-process recorder: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", fmt.Errorf("in-process recorder: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("in-process recorder: %w", err)
	}
	// Renamed into place: a command starting meanwhile never maps a
	// half-written file.
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("in-process recorder: %w", err)
	}
	return path, nil
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
