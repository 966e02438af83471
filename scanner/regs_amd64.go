package scanner

import "golang.org/x/sys/unix"

// stackPointer and threadPointer read a stopped thread's registers.
func stackPointer(r *unix.PtraceRegs) uint64 { return r.Rsp }

// threadPointer is the thread's TLS base (%fs).
func threadPointer(r *unix.PtraceRegs) uint64 { return r.Fs_base }
