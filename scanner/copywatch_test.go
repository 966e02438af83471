package scanner

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPrivateBytes: an idle process's private memory read from
// smaps_rollup is the sum of its mappings' Private_Clean and
// Private_Dirty in smaps. (That it grows as a forked target rewrites
// its memory is TestForkCopyLimit's.)
func TestPrivateBytes(t *testing.T) {
	cmd := exec.Command("cat")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer in.Close()
	time.Sleep(50 * time.Millisecond) // past its start-up
	got, err := privateBytes(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var want uint64
	for _, line := range strings.Split(string(smaps), "\n") {
		for _, key := range []string{"Private_Clean:", "Private_Dirty:"} {
			if v, ok := strings.CutPrefix(line, key); ok {
				kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err != nil {
					t.Fatalf("smaps line %q: %v", line, err)
				}
				want += kb << 10
			}
		}
	}
	if got == 0 || got != want {
		t.Errorf("privateBytes = %d, smaps says %d", got, want)
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
