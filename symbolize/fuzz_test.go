package symbolize

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// symbolizeBytes loads data as an ELF object and symbolizes addresses
// that matter for it (every symbol, the bounds of every unit), returning
// the panics the loader had to recover from: each one is a bug, even
// though the symbolizer survives it.
func symbolizeBytes(data []byte) []string {
	obj, err := openELF(bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		return nil
	}
	m := newModule(obj, debugSearch{disabled: true}, &Options{})
	m.load()
	addrs := []uint64{0, 1, 0x1000, 0x401000, ^uint64(0)}
	if syms := m.symbols(); syms != nil {
		for _, s := range syms.syms {
			addrs = append(addrs, s.addr, s.addr+1, s.end-1)
		}
	}
	if m.dwarf != nil {
		for _, r := range m.dwarf.ranges {
			addrs = append(addrs, r.lo, r.lo+1, (r.lo+r.hi)/2, r.hi-1)
		}
	}
	for _, a := range addrs {
		if f := m.frames(a); len(f) == 0 {
			return []string{fmt.Sprintf("no frame for %#x", a)}
		}
	}
	return m.panics()
}

// panics lists the panics recovered while loading or looking up.
func (m *module) panics() []string {
	var out []string
	for _, err := range m.errs {
		if strings.Contains(err.Error(), "panic") {
			out = append(out, err.Error())
		}
	}
	if m.dwarf != nil {
		for _, u := range m.dwarf.units {
			if u.err != nil && strings.Contains(u.err.Error(), "panic") {
				out = append(out, u.err.Error())
			}
		}
	}
	return out
}

// fuzzSeeds are small real objects in the formats the symbolizer reads:
// DWARF 4 and 5, compressed, from gcc and clang.
func fuzzSeeds(tb testing.TB) [][]byte {
	dir := tb.TempDir()
	var seeds [][]byte
	builds := []struct {
		cc    string
		flags []string
	}{
		{"gcc", []string{"-O2", "-gdwarf-4"}},
		{"gcc", []string{"-O2", "-gdwarf-5", "-gz"}},
		{"clang", []string{"-O2", "-gdwarf-5"}},
		{"g++", []string{"-O2", "-g"}},
	}
	for i, b := range builds {
		if _, err := exec.LookPath(b.cc); err != nil {
			continue
		}
		src := "prog.c"
		if b.cc == "g++" {
			src = "prog.cpp"
		}
		out := filepath.Join(dir, fmt.Sprint(i))
		args := append(append([]string{}, b.flags...), "-o", out, testdataPath(tb, src))
		if b.cc != "g++" {
			args = append(args, "-ldl")
		}
		if err := exec.Command(b.cc, args...).Run(); err != nil {
			tb.Fatalf("%s: %v", b.cc, err)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, data)
	}
	return seeds
}

func FuzzModule(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if p := symbolizeBytes(data); len(p) > 0 {
			t.Fatalf("recovered from: %v", p)
		}
	})
}

// TestCorruptObjects runs deterministic corruptions of real objects
// through the loader in every test run: truncations and byte overwrites
// spread over the file, debug sections included. Nothing may panic, and
// the symbol table must survive corrupt DWARF.
func TestCorruptObjects(t *testing.T) {
	seeds := fuzzSeeds(t)
	if len(seeds) == 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("no compiler to build seeds (CI is set)")
		}
		t.Skip("no compiler")
	}
	for si, seed := range seeds {
		if p := symbolizeBytes(seed); len(p) > 0 {
			t.Fatalf("seed %d: %v", si, p)
		}
		for cut := len(seed); cut > 0; cut = cut * 7 / 8 {
			if p := symbolizeBytes(seed[:cut]); len(p) > 0 {
				t.Errorf("seed %d cut at %d: %v", si, cut, p)
			}
		}
		step := max(len(seed)/2000, 1)
		for off := 0; off < len(seed); off += step {
			data := append([]byte(nil), seed...)
			for k := 0; k < 8 && off+k < len(data); k++ {
				data[off+k] ^= 0xff - byte(k*31)
			}
			if p := symbolizeBytes(data); len(p) > 0 {
				t.Errorf("seed %d corrupted at %#x: %v", si, off, p)
			}
		}
	}
}
