// Package x86 holds the small facts about x86-64 instructions that more
// than one of lsan's decoders needs (golang.org/x/arch/x86/x86asm decodes;
// this says what the decoded registers mean).
package x86

import "golang.org/x/arch/x86/x86asm"

// FullReg maps a sub-register (edi, di, dil) to its 64-bit register, so
// that a write to any of them counts as a write to the whole.
func FullReg(r x86asm.Reg) x86asm.Reg {
	switch {
	case r >= x86asm.AL && r <= x86asm.R15B:
		return x86asm.RAX + (r - x86asm.AL)
	case r >= x86asm.AX && r <= x86asm.R15W:
		return x86asm.RAX + (r - x86asm.AX)
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return x86asm.RAX + (r - x86asm.EAX)
	}
	return r
}
