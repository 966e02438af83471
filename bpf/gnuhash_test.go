package bpf

import (
	"debug/elf"
	"testing"
)

// TestGNUHashMatchesDynamicSymbols looks every dynamic symbol name of
// real objects (and a few that are not there) up through .gnu.hash and
// compares the definition with the one decoding every symbol gives: the
// same symbol, field for field, or none in both.
func TestGNUHashMatchesDynamicSymbols(t *testing.T) {
	for _, c := range []struct {
		path string
		// minimum number of functions the object defines
		funcs int
	}{
		{"/usr/lib/x86_64-linux-gnu/libc.so.6", 2000},
		{"/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", 20},
		{"/usr/lib/x86_64-linux-gnu/libstdc++.so.6", 3000},
		{"/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", 30},
		{"/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4", 50},
		{"/usr/lib/x86_64-linux-gnu/libmimalloc.so.2", 50},
		{"/usr/bin/redis-server", 1},
		{"/usr/sbin/nginx", 1},
	} {
		t.Run(c.path, func(t *testing.T) {
			f, err := elf.Open(c.path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			hash, ok := newGNUHashTable(f)
			if !ok {
				t.Fatal("no usable .gnu.hash")
			}
			syms, err := f.DynamicSymbols()
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]elf.Symbol{}
			addDefinitions(want, syms)
			if len(want) < c.funcs {
				t.Fatalf("%d functions defined, want at least %d", len(want), c.funcs)
			}
			withHash := &elfInfo{hash: hash}
			names := []string{"", "no_such_function_anywhere", "malloc\x00"}
			for _, s := range syms {
				names = append(names, s.Name)
			}
			for _, name := range names {
				got, ok := withHash.definition(name)
				w, wok := want[name]
				if ok != wok || !sameSymbol(got, w) {
					t.Errorf("%q: through .gnu.hash %+v (%v), decoding all %+v (%v)", name, got, ok, w, wok)
				}
			}
		})
	}
}

func sameSymbol(a, b elf.Symbol) bool {
	return a.Name == b.Name && a.Info == b.Info && a.Other == b.Other && a.Section == b.Section &&
		a.Value == b.Value && a.Size == b.Size
}

// TestGNUHashMalloc: the names discovery binds first, with libc's values.
func TestGNUHashMalloc(t *testing.T) {
	f, err := elf.Open("/usr/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hash, ok := newGNUHashTable(f)
	if !ok {
		t.Fatal("no usable .gnu.hash in libc")
	}
	e := &elfInfo{hash: hash}
	for _, name := range []string{"malloc", "free", "calloc", "realloc", "posix_memalign", "_exit"} {
		s, ok := e.definition(name)
		if !ok || s.Name != name || elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Size == 0 {
			t.Errorf("%s: %+v, %v", name, s, ok)
		}
	}
	if s, ok := e.definition("strlen"); !ok || elf.ST_TYPE(s.Info) != elf.STT_GNU_IFUNC {
		t.Errorf("strlen, an IFUNC in glibc: %+v, %v", s, ok)
	}
}

// FuzzGNUHash: any section contents and name give an answer, never an
// index outside the sections.
func FuzzGNUHash(f *testing.F) {
	hdr := []byte{1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 6, 0, 0, 0}
	seed := append(append(append([]byte{}, hdr...), make([]byte, 8)...), 1, 0, 0, 0, 0xe1, 0xa3, 0x0a, 0x0e)
	f.Add(seed, make([]byte, 48), []byte("\x00malloc\x00"), "malloc")
	f.Add([]byte{}, []byte{}, []byte{}, "")
	f.Fuzz(func(t *testing.T, hash, dynsym, dynstr []byte, name string) {
		table, ok := parseGNUHash(hash, dynsym, dynstr)
		if !ok {
			return
		}
		table.lookup(name, func(s elf.Symbol) {
			if s.Name != name {
				t.Fatalf("lookup(%q) visited %q", name, s.Name)
			}
		})
	})
}
