package scanner

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"
	"golang.org/x/sys/unix"
)

// TestStubCode decodes the injection stub and checks every instruction,
// and that each RIP-relative load reads the save slot it is meant to.
func TestStubCode(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("x86-64 code")
	}
	want := []string{
		"SYSCALL", "JMP .+7", "SYSCALL", "TEST RAX, RAX", "JE .+91", // to restore; to child
		"MOV RCX, [save.rcx]", "MOV R11, [save.r11]", "MOV RDI, [save.rdi]", "MOV RSI, [save.rsi]",
		"MOV RDX, [save.rdx]", "MOV R10, [save.r10]", "MOV R8, [save.r8]", "MOV R9, [save.r9]",
		"MOV RSP, [save.rsp]", "LEA RSP, [RSP+Reg(0)-0x80]", // rsp-128 (x86asm prints an empty index so)
		"PUSH [save.rip]", "PUSH [save.rflags]",
		"MOV RAX, [save.rax]", "POPFQ", "RET 0x80",
		"MOV EAX, 0xe7", "XOR EDI, EDI", "SYSCALL", "UD2",
	}
	slotName := map[int]string{saveRIP: "rip", saveRAX: "rax", saveRSP: "rsp", saveRFLAGS: "rflags",
		saveRCX: "rcx", saveR11: "r11", saveRDI: "rdi", saveRSI: "rsi", saveRDX: "rdx",
		saveR10: "r10", saveR8: "r8", saveR9: "r9"}
	var got []string
	for pc := 0; pc < len(stubCode); {
		inst, err := x86asm.Decode(stubCode[pc:], 64)
		if err != nil {
			t.Fatalf("+%d: %v", pc, err)
		}
		text := inst.String()
		for _, a := range inst.Args {
			if m, ok := a.(x86asm.Mem); ok && m.Base == x86asm.RIP {
				target := pc + inst.Len + int(m.Disp)
				slot := (target - stubDataOffset) / 8
				text = strings.Replace(text, fmt.Sprintf("[RIP+%#x]", m.Disp), "[save."+slotName[slot]+"]", 1)
				if (target-stubDataOffset)%8 != 0 || slotName[slot] == "" {
					t.Errorf("+%d: %s reads %d, not a save slot", pc, inst, target)
				}
			}
		}
		got = append(got, strings.Replace(strings.Replace(text, "QWORD PTR ", "", 1), "qword ", "", 1))
		pc += inst.Len
	}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("stub:\n got %s\nwant %s", strings.Join(got, "; "), strings.Join(want, "; "))
	}
	if stubCode[stubPlain] != 0x0f || stubCode[stubClone] != 0x0f {
		t.Errorf("entries are not syscall instructions")
	}
}

// TestResumePoint: a thread stopped in an interrupted system call resumes
// by executing it again, as the kernel would restart it.
func TestResumePoint(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("x86-64 registers")
	}
	for _, tc := range []struct {
		name             string
		orig, rax, rip   uint64
		wantRIP, wantRAX uint64
	}{
		{"in user code", ^uint64(0), 42, 0x1000, 0x1000, 42},
		{"read interrupted (ERESTARTSYS)", 0, uint64(1<<64 - 512), 0x1002, 0x1000, 0},
		{"nanosleep (ERESTART_RESTARTBLOCK)", 35, uint64(1<<64 - 516), 0x2002, 0x2000, unix.SYS_RESTART_SYSCALL},
		{"a call that returned an error", 0, uint64(1<<64 - 4), 0x1002, 0x1002, uint64(1<<64 - 4)},
	} {
		rip, rax := resumePoint(unix.PtraceRegs{Orig_rax: tc.orig, Rax: tc.rax, Rip: tc.rip})
		if rip != tc.wantRIP || rax != tc.wantRAX {
			t.Errorf("%s: %#x %#x, want %#x %#x", tc.name, rip, rax, tc.wantRIP, tc.wantRAX)
		}
	}
}

func TestNotCopiedBytes(t *testing.T) {
	smaps := `55b7b1924000-55b7b1945000 rw-p 00000000 00:00 0                          [heap]
Size:                132 kB
VmFlags: rd wr mr mw me ac sd
7fef2980e000-7fef29842000 rw-p 00000000 00:00 0
Size:                208 kB
VmFlags: rd wr mr mw me dc ac sd
7fef29a17000-7fef29a24000 rw-p 00000000 00:00 0
Size:                 52 kB
VmFlags: rd wr mr mw me ac sd wf
7fffffffe000-7ffffffff000 --xp 00000000 00:00 0                          [uprobes]
Size:                  4 kB
VmFlags: ex mr mw me dc sd
`
	if got, want := notCopiedBytes([]byte(smaps)), uint64(208+52)<<10; got != want {
		t.Errorf("%d bytes not copied, want %d (the dc and wf heaps, not [uprobes])", got, want)
	}
}
