package bpf

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/lsan-project/lsan/internal/x86"
)

// Probe placement.
//
// An x86 uprobe costs one trap when the kernel can emulate the probed
// instruction (push of a register, jmp, jcc, call, ret) and a second trap
// when it must single-step it out of line (measured here: ~0.3 µs against
// ~3–16 µs; glibc's free starts with `test %rdi,%rdi`, CET builds start
// every function with endbr64). So each probe goes on the first emulated
// instruction of its function, provided nothing before it can change what
// the BPF program reads there: the argument registers and the stack
// pointer. Control flow cannot pass such a point unnoticed either, since
// branches are themselves emulated and stop the walk. The return probe
// shares the same address (one breakpoint serves both): with the stack
// pointer untouched, [rsp] is still the return address the kernel hijacks.

// maxPlacementScan bounds the instructions decoded from a function entry.
const maxPlacementScan = 16

// Placement is where a function's probe goes.
type Placement struct {
	// Offset from the function's entry.
	Offset uint64
	// Why it is there, for diagnostics and tests.
	Reason string
}

var endbr64 = []byte{0xf3, 0x0f, 0x1e, 0xfa}

// placeProbe decodes the start of a function and returns the offset of
// its first instruction the kernel emulates, or 0 when it is not safe or
// not known to be worth moving. reads are the registers the function's BPF
// programs read at the probe (its arguments); the stack pointer is always
// read.
func placeProbe(code []byte, reads []x86asm.Reg) Placement {
	protected := map[x86asm.Reg]bool{x86asm.RSP: true}
	for _, r := range reads {
		protected[r] = true
	}
	off := 0
	for i := 0; i < maxPlacementScan && off < len(code); i++ {
		rest := code[off:]
		if hasPrefix(rest, endbr64) {
			// x86asm does not decode endbr64; it is a no-op for us.
			off += len(endbr64)
			continue
		}
		if emulatedByKernel(rest) {
			if off == 0 {
				return Placement{0, "entry instruction is emulated"}
			}
			return Placement{uint64(off), fmt.Sprintf("first emulated instruction at +%d", off)}
		}
		inst, err := x86asm.Decode(rest, 64)
		if err != nil {
			return Placement{0, fmt.Sprintf("undecodable instruction at +%d", off)}
		}
		if why := unsafeBeforeProbe(inst, protected); why != "" {
			return Placement{0, fmt.Sprintf("%s at +%d", why, off)}
		}
		off += inst.Len
	}
	return Placement{0, "no emulated instruction near the entry"}
}

func hasPrefix(b, p []byte) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == string(p)
}

// emulatedByKernel reports whether the x86 uprobe code emulates the
// instruction at the start of b instead of single-stepping it: push of a
// register (optionally with REX.B), jmp/call/jcc with relative targets,
// and ret.
func emulatedByKernel(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	op := b[0]
	switch {
	case op >= 0x50 && op <= 0x57: // push %reg
		return true
	case op == 0x41 && len(b) > 1 && b[1] >= 0x50 && b[1] <= 0x57: // push %r8-%r15
		return true
	case op == 0xe8, op == 0xe9, op == 0xeb: // call, jmp rel32, jmp rel8
		return true
	case op >= 0x70 && op <= 0x7f: // jcc rel8
		return true
	case op == 0x0f && len(b) > 1 && b[1] >= 0x80 && b[1] <= 0x8f: // jcc rel32
		return true
	case op == 0xc3, op == 0xc2: // ret
		return true
	}
	return false
}

// argumentRegs are the registers of the first arguments, in order.
var argumentRegs = []x86asm.Reg{x86asm.RDI, x86asm.RSI, x86asm.RDX, x86asm.RCX, x86asm.R8, x86asm.R9}

// readsOf lists the argument registers the entry program reads for a
// function with this signature.
func readsOf(sig signature) []x86asm.Reg {
	return argumentRegs[:min(sig.args(), len(argumentRegs))]
}

// unsafeBeforeProbe says why an instruction may not come before the
// probe ("" when it may): only instruction kinds whose only effects are
// the flags and their first operand are allowed, and that operand must
// not be a protected register.
func unsafeBeforeProbe(inst x86asm.Inst, protected map[x86asm.Reg]bool) string {
	switch inst.Op {
	case x86asm.NOP, x86asm.TEST, x86asm.CMP, x86asm.BT:
		return "" // flags only
	case x86asm.IMUL:
		if inst.Args[1] == nil {
			return "one-operand IMUL writes rdx:rax"
		}
	case x86asm.MOV, x86asm.MOVZX, x86asm.MOVSX, x86asm.MOVSXD, x86asm.LEA,
		x86asm.AND, x86asm.OR, x86asm.XOR, x86asm.ADD, x86asm.SUB,
		x86asm.SHL, x86asm.SHR, x86asm.SAR, x86asm.NOT, x86asm.NEG, x86asm.INC, x86asm.DEC:
	default:
		if !isCmovOrSet(inst.Op) {
			return fmt.Sprintf("%v is not known to be safe", inst.Op)
		}
	}
	if r, ok := inst.Args[0].(x86asm.Reg); ok && protected[x86.FullReg(r)] {
		return fmt.Sprintf("%v writes %v", inst.Op, r)
	}
	return ""
}

func isCmovOrSet(op x86asm.Op) bool {
	name := op.String()
	return strings.HasPrefix(name, "CMOV") || strings.HasPrefix(name, "SET")
}

// PlacementMode chooses where probes go.
type PlacementMode int

const (
	PlaceAuto  PlacementMode = iota // first emulated instruction when safe
	PlaceEntry                      // always the function entry
)

// placeBinding reads a bound function's first bytes from its file and
// places its probe. Other architectures, unreadable code: the entry.
func placeBinding(b Binding, sig signature, mode PlacementMode) Placement {
	if mode == PlaceEntry {
		return Placement{0, "placement disabled"}
	}
	if runtime.GOARCH != "amd64" {
		return Placement{0, "placement is implemented for x86-64 only"}
	}
	code, err := readCode(b.Object.OpenPath, b.FileOffset, b.Size)
	if err != nil {
		return Placement{0, "code unreadable: " + err.Error()}
	}
	return placeProbe(code, readsOf(sig))
}

func readCode(path string, off, size uint64) ([]byte, error) {
	const window = 64
	n := uint64(window)
	if size > 0 && size < n {
		n = size
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, n)
	k, err := f.ReadAt(buf, int64(off))
	if err != nil && err != io.EOF {
		return nil, err
	}
	return buf[:k], nil
}
