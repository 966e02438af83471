package scanner

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPrivateBytes: touching 8 MiB of fresh anonymous memory raises the
// process's private memory by at least that much, and no more than a
// little over it.
func TestPrivateBytes(t *testing.T) {
	const size = 8 << 20
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	before, err := privateBytes(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < size; i += 4096 {
		mem[i] = 1
	}
	after, err := privateBytes(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if grew := int64(after) - int64(before); grew < size || grew > size+4<<20 {
		t.Errorf("private memory grew by %d bytes, want %d to %d", grew, size, size+4<<20)
	}
}

func TestKBField(t *testing.T) {
	data := []byte("Rss:               12 kB\nPrivate_Clean:      5 kB\nPrivate_Dirty:   1234 kB\n")
	for key, want := range map[string]uint64{"Private_Clean": 5, "Private_Dirty": 1234, "Rss": 12} {
		if got, err := kbField(data, key); err != nil || got != want {
			t.Errorf("%s: %d, %v; want %d", key, got, err, want)
		}
	}
	if _, err := kbField(data, "Swap"); err == nil {
		t.Error("Swap: found in a text without it")
	}
}

// FuzzKBField: any text parses without a panic, and a well-formed line
// reads back its number.
func FuzzKBField(f *testing.F) {
	f.Add([]byte("Private_Dirty:   1234 kB\n"), uint64(7))
	f.Add([]byte("Private_Dirty:\n"), uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, n uint64) {
		kbField(data, "Private_Dirty")
		if bytes.Contains(data, []byte("Z_Key")) {
			return
		}
		line := append(append([]byte{}, data...), fmt.Sprintf("\nZ_Key: %d kB\n", n)...)
		if got, err := kbField(line, "Z_Key"); err == nil && got != n {
			t.Fatalf("read %d, want %d", got, n)
		}
	})
}
