package scanner

import "golang.org/x/sys/unix"

// stackPointer and threadPointer read a stopped thread's registers.
func stackPointer(r *unix.PtraceRegs) uint64 { return r.Sp }

// threadPointer would be tpidr_el0, which the general registers lack:
// 0 turns off what depends on it (jemalloc's per-thread cache slots).
func threadPointer(*unix.PtraceRegs) uint64 { return 0 }
