package scanner

import (
	"debug/elf"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// TestFindGadget finds the injection point in the real _exit of glibc
// (Debian 12) and of a static musl program: a syscall after which a child
// whose clone returned 0 reaches exit_group or exit.
func TestFindGadget(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("x86-64 code")
	}
	for _, tc := range []struct {
		file, sym string
		wantRegs  map[x86asm.Reg]int
	}{
		// glibc: syscall at +39 (exit_group), then jbe taken back to
		// `mov %edx,%eax; syscall`: rdx must hold exit_group.
		{"/lib/x86_64-linux-gnu/libc.so.6", "_exit", map[x86asm.Reg]int{x86asm.RDX: sysExitGroup}},
		// musl: `mov $60,%eax; syscall` follows: nothing to set.
		{filepath.Join("..", "examples", "bin", "musl_static"), "_Exit", map[x86asm.Reg]int{}},
	} {
		ef, err := elf.Open(tc.file)
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal(err)
			}
			t.Skip(err)
		}
		sym, ok := anySymbol(ef, tc.sym)
		if !ok {
			t.Fatalf("%s: no %s", tc.file, tc.sym)
		}
		code, err := readVaddr(ef, sym.Value, int(min(max(sym.Size, 32), 256)))
		if err != nil {
			t.Fatal(err)
		}
		off, regs, ok := findGadget(code)
		if !ok {
			t.Fatalf("%s: no gadget in %s (% x)", tc.file, tc.sym, code)
		}
		if code[off] != 0x0f || code[off+1] != 0x05 || len(regs) != len(tc.wantRegs) {
			t.Errorf("%s: gadget at +%d, registers %v, want %v", tc.file, off, regs, tc.wantRegs)
		}
		for r, v := range tc.wantRegs {
			if regs[r] != v {
				t.Errorf("%s: %v = %d, want %d", tc.file, r, regs[r], v)
			}
		}
		ef.Close()
	}
}

// TestChildExitsRefuses: paths that would run anything but an exit are
// refused.
func TestChildExitsRefuses(t *testing.T) {
	for name, code := range map[string][]byte{
		"ret after the syscall":   {0x0f, 0x05, 0xc3},
		"hlt":                     {0x0f, 0x05, 0xf4},
		"a write":                 {0x0f, 0x05, 0xb8, 0x01, 0, 0, 0, 0x0f, 0x05},
		"eax from a clone arg":    {0x0f, 0x05, 0x89, 0xf8, 0x0f, 0x05}, // mov %edi,%eax
		"a memory store":          {0x0f, 0x05, 0x89, 0x07},
		"runs off the end":        {0x0f, 0x05, 0x90},
		"unconditional jmp loops": {0x0f, 0x05, 0xeb, 0xfe},
	} {
		if _, _, ok := findGadget(code); ok {
			t.Errorf("%s: accepted", name)
		}
	}
	// mov $231,%eax; syscall after the gadget: accepted with nothing to set.
	if off, regs, ok := findGadget([]byte{0x0f, 0x05, 0xb8, 0xe7, 0, 0, 0, 0x0f, 0x05}); !ok || off != 0 || len(regs) != 0 {
		t.Errorf("exit_group by immediate: %d %v %v", off, regs, ok)
	}
}
