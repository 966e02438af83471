// Package scanner decides which tracked heap blocks of a live process are
// leaks, the way LeakSanitizer does at exit, without stopping the process
// for long and without anything loaded into it.
//
// Check stops every thread of the target with ptrace (PTRACE_SEIZE +
// PTRACE_INTERRUPT: no signal is sent), asks the caller for the tracked
// blocks while the target is stopped, scans the target's memory
// conservatively, resumes the target and classifies each block:
//
//	res, err := scanner.Check(pid, func() ([]scanner.Block, error) {
//		return blocksFromTheTracer(), nil // called while the target is stopped
//	}, scanner.Options{Allocator: scanner.Glibc})
//	for i, b := range res.Blocks {
//		if res.Classes[i] == scanner.Direct { … }
//	}
//
// Roots are every thread's registers (general purpose and FP/vector),
// every thread's stack from its stack pointer up, and all writable memory
// (globals, TLS, the heap and anonymous memory, blocks allocated before
// lsan attached) minus the tracked blocks themselves. A word pointing
// anywhere into a block's usable size marks it; reached blocks are scanned
// in turn. Blocks left unreachable are Indirect if another unreachable
// block points into them, Direct otherwise — LSan's classes. Result keeps
// the pointers between unreachable blocks, so Reclassify can redo the
// classification with suppressed blocks as roots (LSan's suppression rerun)
// without the target.
//
// The target is always resumed: on errors, on panics (returned as a
// *PanicError), and if this process dies (the kernel detaches the
// tracees of a tracer that exits). All ptrace requests are made from one
// goroutine, the tracer, locked to its OS thread for the life of the
// process: checks run there one at a time. A thread that could not be
// stopped in time is detached by the tracer as soon as it stops, and the
// threads of a target killed mid-check are reaped.
//
// docs/scanner.md describes the design, its limits and its performance.
package scanner
