package session

import "golang.org/x/sys/unix"

// setPC moves the child's program counter back to the breakpoint.
func setPC(regs *unix.PtraceRegs, pc uint64) { regs.Pc = pc }

// breakpoint is brk #0.
var breakpoint = []byte{0x00, 0x00, 0x20, 0xd4}
