package unwind

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestDiskCache: a table read back from disk is the table built, and a
// second cache gets it from disk, not by building.
func TestDiskCache(t *testing.T) {
	const libc = "/usr/lib/x86_64-linux-gnu/libc.so.6"
	built, err := Open(libc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Setenv("LSAN_CACHE_DIR", dir)
	c := NewCache()
	first, _, err := c.Get(libc)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "unwind"))
	if len(entries) != 1 {
		t.Fatalf("%d cache entries, want 1", len(entries))
	}
	again := loadDisk(filepath.Join(dir, "unwind"), libc)
	if again == nil {
		t.Fatal("the entry does not read back")
	}
	for name, got := range map[string]*Table{"cache": first, "disk": again} {
		if !reflect.DeepEqual(got, built) {
			t.Errorf("%s: %d rows, %d FDEs, %v; built %d rows, %d FDEs, %v", name,
				len(got.Rows), got.FDEs, got.Sources, len(built.Rows), built.FDEs, built.Sources)
		}
	}
	if len(built.Rows) < 10000 {
		t.Errorf("libc has %d rows: the test proves little", len(built.Rows))
	}
}

// FuzzDecodeTable: any bytes give a table or an error, never a panic, and
// a table encodes back to the same bytes.
func FuzzDecodeTable(f *testing.F) {
	f.Add(encodeTable(&Table{FDEs: 2, Expressions: 1, Sources: []string{".eh_frame"},
		Rows: []Row{{PC: 0x1000, CFAOffset: 8, Kind: KindRSP}, {PC: 0x1004, CFAOffset: 16, Kind: KindRBP, RBPOffset8: -2}}}))
	f.Add([]byte(diskMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := decodeTable(data)
		if err != nil {
			return
		}
		if got := encodeTable(tab); string(got) != string(data) {
			t.Errorf("re-encoded %x, read %x", got, data)
		}
	})
}
