package symbolize

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path"

	"github.com/ulikunitz/xz"
)

// defaultDebugDir is where distributions install separate debug info
// (Debian's -dbg and -dbgsym packages, Fedora's debuginfo).
const defaultDebugDir = "/usr/lib/debug"

// maxMiniDebugInfo caps the decompressed size of .gnu_debugdata.
const maxMiniDebugInfo = 256 << 20

// rootFS is the file system root a target process sees: "" for ours, or a
// path prefix that reaches the target's root (a container's), such as
// /proc/self/fd/N for a pinned root directory.
type rootFS struct{ prefix string }

func (r rootFS) path(p string) string { return r.prefix + p }
func (r rootFS) isHost() bool         { return r.prefix == "" }

// debugSearch says where to look for the separate debug info of one
// object: its path as the target sees it and the roots to look under.
type debugSearch struct {
	targetPath string   // the object as the target sees it
	root       rootFS   // the target's root
	dirs       []string // Options.DebugDirs, host paths
	self       fileKey  // the object itself, never its own debug file
	disabled   bool     // look nowhere (objects not from disk)
}

// debugRoots lists the debug directories in search order: the user's
// first (an explicit choice wins), then the target's /usr/lib/debug (a
// container ships debug info matching its own libraries), then ours.
func (s *debugSearch) debugRoots() []string {
	if s.disabled {
		return nil
	}
	roots := append([]string(nil), s.dirs...)
	roots = append(roots, s.root.path(defaultDebugDir))
	if !s.root.isHost() {
		roots = append(roots, defaultDebugDir)
	}
	return roots
}

// buildIDPath is the conventional location of a debug file by build-id:
// DIR/.build-id/xx/yyyyyyyy.debug.
func buildIDPath(dir string, id []byte) string {
	h := hex.EncodeToString(id)
	return path.Join(dir, ".build-id", h[:2], h[2:]+".debug")
}

// findByBuildID looks for a debug file whose build-id matches.
func (s *debugSearch) findByBuildID(id []byte) (*elfObject, string) {
	if len(id) < 2 {
		return nil, ""
	}
	for _, dir := range s.debugRoots() {
		p := buildIDPath(dir, id)
		if obj := s.openCandidate(p); obj != nil {
			if bytes.Equal(obj.buildID, id) {
				return obj, p
			}
			obj.close()
		}
	}
	return nil, ""
}

// openCandidate opens a possible debug file, refusing the object itself
// (a debug link may name a file that resolves to the object).
func (s *debugSearch) openCandidate(p string) *elfObject {
	st, err := os.Stat(p)
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	if keyOf(st) == s.self {
		return nil
	}
	obj, err := openELFFile(p)
	if err != nil {
		return nil
	}
	return obj
}

// parseDebugLink decodes .gnu_debuglink: a file name, padding to 4 bytes,
// and the CRC-32 of the debug file.
func parseDebugLink(data []byte, order binary.ByteOrder) (string, uint32, bool) {
	i := bytes.IndexByte(data, 0)
	if i <= 0 {
		return "", 0, false
	}
	crcOff := (i + 1 + 3) &^ 3
	if crcOff+4 > len(data) {
		return "", 0, false
	}
	return string(data[:i]), order.Uint32(data[crcOff:]), true
}

// findByDebugLink looks for the file .gnu_debuglink names, where GDB does:
// beside the object, in .debug/ beside it, and under each debug directory
// followed by the object's directory. The CRC must match.
func (s *debugSearch) findByDebugLink(name string, crc uint32) (*elfObject, string) {
	if s.disabled || name == "" || path.Base(name) != name {
		return nil, "" // a link is a bare file name; anything else is suspect
	}
	dir := path.Dir(s.targetPath)
	candidates := []string{
		s.root.path(path.Join(dir, name)),
		s.root.path(path.Join(dir, ".debug", name)),
	}
	for _, d := range s.debugRoots() {
		candidates = append(candidates, path.Join(d, dir, name))
	}
	for _, d := range s.dirs {
		candidates = append(candidates, path.Join(d, name))
	}
	for _, p := range candidates {
		obj := s.openCandidate(p)
		if obj == nil {
			continue
		}
		if ok, _ := fileCRCMatches(p, crc); ok {
			return obj, p
		}
		obj.close()
	}
	return nil, ""
}

// fileCRCMatches computes the CRC-32 (IEEE) of the file, as
// .gnu_debuglink records it.
func fileCRCMatches(p string, want uint32) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := crc32.NewIEEE()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("checksum %s: %w", p, err)
	}
	return h.Sum32() == want, nil
}

// parseAltLink decodes .gnu_debugaltlink (dwz): a path and a build-id.
func parseAltLink(data []byte) (string, []byte, bool) {
	i := bytes.IndexByte(data, 0)
	if i <= 0 || len(data)-(i+1) < 2 {
		return "", nil, false
	}
	return string(data[:i]), data[i+1:], true
}

// findAltFile finds the dwz supplementary file a debug file refers to: by
// build-id in the debug directories, else at the recorded path (relative
// paths are relative to the debug file's directory).
func (s *debugSearch) findAltFile(link string, id []byte, debugPath string) (*elfObject, string) {
	if s.disabled {
		return nil, ""
	}
	if obj, p := s.findByBuildID(id); obj != nil {
		return obj, p
	}
	var candidates []string
	if path.IsAbs(link) {
		candidates = append(candidates, s.root.path(link))
		if !s.root.isHost() {
			candidates = append(candidates, link)
		}
	} else {
		candidates = append(candidates, path.Join(path.Dir(debugPath), link))
	}
	for _, p := range candidates {
		if obj := s.openCandidate(p); obj != nil {
			if bytes.Equal(obj.buildID, id) {
				return obj, p
			}
			obj.close()
		}
	}
	return nil, ""
}

// miniDebugInfo decodes .gnu_debugdata (Fedora's MiniDebugInfo): an
// xz-compressed ELF file whose .symtab holds the local function symbols
// that .dynsym lacks.
func miniDebugInfo(o *elfObject) ([]symbol, error) {
	data := o.section(".gnu_debugdata", maxMiniDebugInfo)
	if len(data) == 0 {
		return nil, nil
	}
	r, err := xz.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf(".gnu_debugdata: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(r, maxMiniDebugInfo+1))
	if err != nil {
		return nil, fmt.Errorf(".gnu_debugdata: %w", err)
	}
	if len(raw) > maxMiniDebugInfo {
		return nil, errors.New(".gnu_debugdata: too large")
	}
	inner, err := openELF(bytes.NewReader(raw), int64(len(raw)), nil)
	if err != nil {
		return nil, fmt.Errorf(".gnu_debugdata: %w", err)
	}
	syms, err := readFunctionSymbols(inner, elf.SHT_SYMTAB)
	if err != nil {
		return nil, fmt.Errorf(".gnu_debugdata: %w", err)
	}
	return syms, nil
}
