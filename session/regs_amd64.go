package session

import "golang.org/x/sys/unix"

// setPC moves the child's instruction pointer back to the breakpoint.
func setPC(regs *unix.PtraceRegs, pc uint64) { regs.Rip = pc }

// breakpoint is int3.
var breakpoint = []byte{0xcc}
