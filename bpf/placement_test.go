package bpf

import (
	"debug/elf"
	"os"
	"testing"
)

func TestPlaceProbeSynthetic(t *testing.T) {
	// A function that reads only %rdi may have %rdx written before its probe.
	if p := placeProbe([]byte{0x48, 0x8b, 0x15, 0, 0, 0, 0, 0x53}, readsOf(free(1))); p.Offset != 7 {
		t.Errorf("free-like with mov to rdx: offset %d (%s), want 7", p.Offset, p.Reason)
	}
	if p := placeProbe([]byte{0x48, 0x8b, 0x15, 0, 0, 0, 0, 0x53}, readsOf(signature{op: opPosixMemalign, ptr: 1, size: 3})); p.Offset != 0 {
		t.Errorf("posix_memalign-like with mov to rdx: offset %d (%s), want 0", p.Offset, p.Reason)
	}
	for _, tc := range []struct {
		name string
		code []byte
		want uint64
	}{
		{"push first", []byte{0x41, 0x54, 0x55}, 0},                                  // push %r12; push %rbp
		{"glibc free", []byte{0x48, 0x85, 0xff, 0x0f, 0x84, 0xbf, 0, 0, 0, 0x55}, 3}, // test %rdi,%rdi; je; push
		{"endbr64 then push", []byte{0xf3, 0x0f, 0x1e, 0xfa, 0x55}, 4},
		{"endbr64 test jcc", []byte{0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x85, 0xff, 0x74, 0x10}, 7},
		{"mov to a scratch register", []byte{0x48, 0x89, 0xf8, 0x53}, 3},          // mov %rdi,%rax; push %rbx
		{"mov into an argument register", []byte{0x48, 0x89, 0xc7, 0x53}, 0},      // mov %rax,%rdi
		{"writes edi (sub-register)", []byte{0x31, 0xff, 0x53}, 0},                // xor %edi,%edi
		{"stack pointer moved", []byte{0x48, 0x83, 0xec, 0x18, 0x53}, 0},          // sub $0x18,%rsp
		{"mul clobbers rdx", []byte{0x48, 0x89, 0xf0, 0x48, 0xf7, 0xe2, 0x53}, 0}, // mov; mul %rdx; push
		{"syscall is not safe", []byte{0x0f, 0x05, 0x53}, 0},
		{"undecodable", []byte{0x0f, 0xff}, 0},
		{"truncated", []byte{0x48}, 0},
		{"empty", nil, 0},
		{"nops up to the scan limit", append(make([]byte, 0, 20), 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x55), 0},
		{"nops then push", []byte{0x90, 0x90, 0x90, 0x55}, 3},
		{"nop then jmp", []byte{0x90, 0xeb, 0x00}, 1},
		{"shift of a scratch register", []byte{0x48, 0xc1, 0xe8, 0x1a, 0x53}, 4}, // shr $0x1a,%rax
		{"one-operand imul", []byte{0x48, 0xf7, 0xef, 0x53}, 0},                  // imul %rdi
	} {
		if got := placeProbe(tc.code, argumentRegs); got.Offset != tc.want {
			t.Errorf("%s: offset %d (%s), want %d", tc.name, got.Offset, got.Reason, tc.want)
		}
	}
}

// TestPlaceProbeRealAllocators checks placement on the machine's own
// libc, jemalloc and tcmalloc: every probe lands on an emulated
// instruction, and free (which glibc starts with a single-stepped
// `test`) moves off its entry.
func TestPlaceProbeRealAllocators(t *testing.T) {
	libs := map[string]string{
		"libc":     "/usr/lib/x86_64-linux-gnu/libc.so.6",
		"jemalloc": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
		"tcmalloc": "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4",
	}
	for name, path := range libs {
		f, err := elf.Open(path)
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s: %v", name, err)
			}
			t.Logf("skip %s: %v", name, err)
			continue
		}
		syms, _ := f.DynamicSymbols()
		info := map[string]elf.Symbol{}
		addDefinitions(info, syms)
		placed := 0
		for _, fn := range AllocatorFuncs {
			s, ok := info[fn.Name]
			if !ok || elf.ST_TYPE(s.Info) != elf.STT_FUNC {
				continue
			}
			off, ok := fileOffset(f, s.Value)
			if !ok {
				t.Fatalf("%s %s: no file offset", name, fn.Name)
			}
			code, err := readCode(path, off, s.Size)
			if err != nil {
				t.Fatal(err)
			}
			p := placeProbe(code, readsOf(fn.sig))
			if p.Offset > 0 {
				placed++
				if !emulatedByKernel(code[p.Offset:]) {
					t.Errorf("%s %s: probe at +%d is not on an emulated instruction", name, fn.Name, p.Offset)
				}
			}
			if name == "libc" && fn.Name == "free" && p.Offset != 3 {
				t.Errorf("glibc free placed at +%d (%s), want +3 (the je after test %%rdi)", p.Offset, p.Reason)
			}
			// jemalloc's free computes for 48 bytes (writing rdx, which free
			// does not read) before its first branch.
			if name == "jemalloc" && fn.Name == "free" && p.Offset != 48 {
				t.Errorf("jemalloc free placed at +%d (%s), want +48 (the jne)", p.Offset, p.Reason)
			}
		}
		t.Logf("%s: %d probes moved off the entry", name, placed)
		f.Close()
	}
}
