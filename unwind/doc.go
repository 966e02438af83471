// Package unwind compiles the call frame information (CFI) of an ELF file
// (.eh_frame, and .debug_frame when present) into compact unwind rows that
// lsan's BPF probe walks at allocation time, so that stacks are complete on
// programs built without frame pointers (glibc, Debian's -O2 builds).
//
// One entry point builds the table of a file, once:
//
//	tab, err := unwind.Open("/usr/lib/x86_64-linux-gnu/libc.so.6")
//	// tab.Rows: sorted by PC (ELF virtual address), one per change of rule
//
// A Cache shares tables between processes that map the same file (keyed by
// device and inode). The CIEs and FDEs are parsed, and each row evaluated,
// by github.com/go-delve/delve/pkg/dwarf/frame; this package only finds
// where rows start and reduces each to what the BPF walker can evaluate on
// x86-64: CFA = rsp or rbp + offset, the return address at CFA-8, rbp saved
// at CFA+offset or unchanged. Rows it cannot express (DWARF expressions)
// are kept, marked KindExpression, and counted, so that the walker stops
// there with a marker instead of reading junk. PLT sections get their
// known rules; signal trampolines (CIE augmentation "S") are marked.
//
// Build never panics on malformed input (a fuzz target checks it).
// The design is in docs/unwind.md.
package unwind
