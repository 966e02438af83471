package unwind

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Tables are kept on disk between runs: building libc's takes tens of
// milliseconds, which every `lsan run` of every small test binary would
// pay again. A file's entry is named after its device, inode, size and
// modification time, so a replaced or rebuilt file gets a new one.
//
// Entry format (little-endian): "LSANUW01", FDEs, Expressions, the
// number of sources and each as a length and bytes, the number of rows,
// then the rows, 8 bytes each (PC u32, CFAOffset u16, Kind u8,
// RBPOffset8 i8).

// diskMagic starts an entry; a new format gets a new one.
const diskMagic = "LSANUW01"

// DiskDir is where tables are kept: $LSAN_CACHE_DIR, else the user's
// cache directory. "" or "off" keeps none.
func DiskDir() string {
	if d, ok := os.LookupEnv("LSAN_CACHE_DIR"); ok {
		if d == "off" {
			return ""
		}
		return filepath.Join(d, "unwind")
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "lsan", "unwind")
}

// diskKey names path's entry, from what stat says of the file.
func diskKey(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", errors.New("no stat data")
	}
	h := sha256.New()
	binary.Write(h, binary.LittleEndian, []uint64{st.Dev, st.Ino, uint64(st.Size), uint64(st.Mtim.Sec), uint64(st.Mtim.Nsec)})
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}

// loadDisk reads path's entry (nil when there is none or it is unusable).
func loadDisk(dir, path string) *Table {
	if dir == "" {
		return nil
	}
	key, err := diskKey(path)
	if err != nil {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(dir, key))
	if err != nil {
		return nil
	}
	t, err := decodeTable(data)
	if err != nil {
		return nil
	}
	return t
}

// storeDisk writes path's entry; a failure only costs the next run the
// build.
func storeDisk(dir, path string, t *Table) {
	if dir == "" {
		return
	}
	key, err := diskKey(path)
	if err != nil || os.MkdirAll(dir, 0o755) != nil {
		return
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(encodeTable(t))
	if cerr := tmp.Close(); werr != nil || cerr != nil {
		return
	}
	// Renamed into place: a concurrent run never reads half an entry.
	_ = os.Rename(tmp.Name(), filepath.Join(dir, key))
}

func encodeTable(t *Table) []byte {
	var b bytes.Buffer
	b.WriteString(diskMagic)
	u32 := func(v int) { binary.Write(&b, binary.LittleEndian, uint32(v)) }
	u32(t.FDEs)
	u32(t.Expressions)
	u32(len(t.Sources))
	for _, s := range t.Sources {
		u32(len(s))
		b.WriteString(s)
	}
	u32(len(t.Rows))
	row := make([]byte, 8)
	for _, r := range t.Rows {
		binary.LittleEndian.PutUint32(row, r.PC)
		binary.LittleEndian.PutUint16(row[4:], r.CFAOffset)
		row[6], row[7] = byte(r.Kind), byte(r.RBPOffset8)
		b.Write(row)
	}
	return b.Bytes()
}

func decodeTable(data []byte) (*Table, error) {
	rest, ok := bytes.CutPrefix(data, []byte(diskMagic))
	if !ok {
		return nil, errors.New("not an unwind table entry")
	}
	u32 := func() (int, error) {
		if len(rest) < 4 {
			return 0, errors.New("truncated")
		}
		v := binary.LittleEndian.Uint32(rest)
		rest = rest[4:]
		return int(v), nil
	}
	t := &Table{}
	var err error
	if t.FDEs, err = u32(); err != nil {
		return nil, err
	}
	if t.Expressions, err = u32(); err != nil {
		return nil, err
	}
	n, err := u32()
	if err != nil || n > 16 {
		return nil, fmt.Errorf("bad source count %d", n)
	}
	for i := 0; i < n; i++ {
		l, err := u32()
		if err != nil || l > len(rest) {
			return nil, errors.New("truncated source")
		}
		t.Sources = append(t.Sources, string(rest[:l]))
		rest = rest[l:]
	}
	rows, err := u32()
	if err != nil || rows*8 != len(rest) {
		return nil, errors.New("bad row count")
	}
	t.Rows = make([]Row, rows)
	for i := range t.Rows {
		r := rest[8*i:]
		t.Rows[i] = Row{PC: binary.LittleEndian.Uint32(r), CFAOffset: binary.LittleEndian.Uint16(r[4:]),
			Kind: Kind(r[6]), RBPOffset8: int8(r[7])}
	}
	return t, nil
}
