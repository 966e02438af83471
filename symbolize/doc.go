// Package symbolize turns program counters of a target process into
// functions, source files and lines, as LeakSanitizer's reports show them:
//
//	#1 0x55bd67b8e742 in quokka_direct /src/app.c:34:87
//	#2 0x7f3a12345678 (/usr/lib/x86_64-linux-gnu/libfoo.so+0x1742)
//
// # Use
//
//	s := symbolize.New(symbolize.Options{})  // once; caches across checks
//	p, err := s.Snapshot(pid)                // at check time
//	frames := p.Symbolize(pc)                // innermost first
//
// Snapshot captures /proc/PID/maps and opens every mapped object (cheap:
// ELF headers only, and cached); a Process keeps answering after its
// process has exited. Symbolize never fails: an address without symbols
// still gets its module and offset, an address outside every mapping its
// PC alone. Callers pass the exact address to look up: return addresses
// minus one, so that the line shown is the call's.
//
// # Conventions
//
// Frame.ModuleOffset is the address in the ELF file's own (link-time)
// virtual address space: PC minus the load bias. It is what
// `addr2line -e MODULE 0xOFF` and `llvm-symbolizer --obj=MODULE 0xOFF`
// expect, and what LeakSanitizer prints in "(module+0xoff)": for a PIE or
// shared library whose first PT_LOAD has p_vaddr 0 it is the offset from
// the load address, for a non-PIE executable it is the PC itself.
//
// Function names come from DWARF when DWARF describes the address, so
// inlined frames are named; otherwise from the symbol tables (.symtab,
// the separate debug file's .symtab, MiniDebugInfo, .dynsym). A mangled
// C++ or Rust linkage name is demangled with parameter types, as
// LeakSanitizer and llvm-symbolizer print them
// ("zoo::Keeper<zoo::Keeper<int> >::store(int)", GNU spacing as
// llvm-symbolizer 14 and c++filt print it; Rust legacy names without their
// hash, v0 names as rustc-demangle prints them); Options.NoDemangle keeps
// the raw names. For C, DW_AT_name wins over an unmangled linkage name,
// which is an assembler label such as glibc's "__GI_abort". Of symbol
// aliases at one address, the least underscored name wins, then the
// global one ("malloc", not "__libc_malloc"; "calloc", not
// "__libc_calloc").
//
// Inlined calls expand into one frame per level, innermost first, as
// `llvm-symbolizer --inlining` and `addr2line -i` print them: the inlined
// function at the line of the PC, then each caller at the line of the
// call (DW_AT_call_file/line/column), with Frame.Inlined set on all but
// the last.
//
// # Concurrency
//
// A Symbolizer and its Processes are not safe for concurrent use: call
// them from one goroutine at a time (internally, loading a module
// decompresses its sections in parallel).
//
// See docs/symbolize.md for the lookup order, the debug-info search
// paths, caching and the performance figures.
package symbolize
