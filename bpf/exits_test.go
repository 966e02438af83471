package bpf

import (
	"debug/elf"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const libcPath = "/lib/x86_64-linux-gnu/libc.so.6"

// libcFunctions returns the dynamic symbols of glibc's allocator
// functions, by name.
func libcFunctions(t *testing.T, f *elf.File) map[string]elf.Symbol {
	t.Helper()
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]elf.Symbol{}
	for _, s := range syms {
		for _, fn := range AllocatorFuncs {
			if s.Name == fn.Name && s.Value != 0 {
				out[s.Name] = s
			}
		}
	}
	return out
}

// objdumpExits lists, from objdump's disassembly of [start, end), the
// addresses of ret instructions and of jumps to memset/memcpy PLT entries.
func objdumpExits(t *testing.T, start, end uint64) []string {
	t.Helper()
	out, err := exec.Command("objdump", "-d", "--no-show-raw-insn", fmt.Sprintf("--start-address=%#x", start), fmt.Sprintf("--stop-address=%#x", end), libcPath).Output()
	if err != nil {
		t.Fatalf("objdump: %v", err)
	}
	line := regexp.MustCompile(`^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$`)
	var exits []string
	for _, l := range strings.Split(string(out), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		addr, _ := strconv.ParseUint(m[1], 16, 64)
		switch {
		case m[2] == "ret":
			exits = append(exits, fmt.Sprintf("ret@%#x", addr))
		case m[2] == "jmp" && strings.Contains(m[3], "@plt") && !jumpsToAllocator(m[3]):
			// A tail jump into the PLT that does not reach another
			// allocator function: glibc's ifunc'ed memset and memcpy,
			// which objdump shows as *ABS*+RESOLVER@plt.
			exits = append(exits, fmt.Sprintf("tail@%#x", addr))
		}
	}
	return exits
}

func jumpsToAllocator(operand string) bool {
	for _, fn := range AllocatorFuncs {
		if strings.Contains(operand, "<"+fn.Name+"@plt>") {
			return true
		}
	}
	return false
}

// TestExitsOfGlibcFunctions: the exits found for glibc's allocator
// functions are exactly the ret instructions and the tail jumps into the
// PLT (memset, memcpy) that objdump shows in them and in the internal
// functions they tail-jump into.
func TestExitsOfGlibcFunctions(t *testing.T) {
	f, err := elf.Open(libcPath)
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	fns := libcFunctions(t, f)
	probed := map[uint64]string{}
	names := map[string]bool{}
	for name, s := range fns {
		probed[s.Value] = name
		names[name] = true
	}
	x, err := newExitFinder(f, probed, names)
	if err != nil {
		t.Fatal(err)
	}
	text := f.Section(".text")
	toVaddr := func(off uint64) uint64 { return off - text.Offset + text.Addr }
	for _, name := range []string{"malloc", "calloc", "realloc", "strdup", "strndup", "posix_memalign", "memalign", "aligned_alloc", "valloc", "pvalloc", "reallocarray"} {
		s, ok := fns[name]
		if !ok {
			t.Errorf("%s not in libc", name)
			continue
		}
		sites, err := x.exits(s.Value, s.Size)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var got []string
		for _, e := range sites {
			kind := "ret"
			if e.kind == exitTailFirst {
				kind = "tail"
			}
			got = append(got, fmt.Sprintf("%s@%#x", kind, toVaddr(e.offset)))
		}
		// The truth: objdump over the function and the internal functions
		// it tail-jumps into (glibc's memalign family ends in
		// _mid_memalign).
		want := objdumpExits(t, s.Value, s.Value+s.Size)
		for _, e := range sites {
			if v := toVaddr(e.offset); v < s.Value || v >= s.Value+s.Size {
				fde, _ := x.fdes.FDEForPC(v)
				for _, w := range objdumpExits(t, fde.Begin(), fde.End()) {
					if !slices.Contains(want, w) {
						want = append(want, w)
					}
				}
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: exits %v, objdump says %v", name, got, want)
		}
		t.Logf("%s: %v", name, got)
	}
}
