package suppressions

// builtinFile is the File of the rules Defaults returns.
const builtinFile = "<built-in>"

// dynamicLinkerPattern is how the dynamic-linker rule shows in the
// "Suppressions used:" table and in JSON. It is not a template.
const dynamicLinkerPattern = "<allocated by the dynamic linker>"

// Defaults returns lsan's built-in suppressions, in the order they are
// tried and listed. They cover one-time allocations of glibc and its dynamic
// linker that are not leaks of the program and that LSan hides by default
// too. Put them after the user's rules (user.Merge(Defaults())), as LSan
// does. The CLI drops them with --no-default-suppressions.
func Defaults() *Set {
	return &Set{Rules: []*Rule{
		// LSan's built-in rule (lsan_common.cpp, kStdSuppressions): glibc
		// allocates dynamic TLS blocks and grows the DTV inside
		// __tls_get_addr and frees them only at thread exit; some glibc
		// versions lose them (sourceware BZ#12650). Neither is a leak of
		// the program.
		builtin(templateRule, "*tls_get_addr*", 1),
		// LSan's built-in rule since LLVM 21 (llvm-project PR #142876):
		// dlerror's message buffer is owned by glibc through a TLS
		// pointer and freed when the thread exits or dlerror is called
		// again; the program never owns it.
		builtin(templateRule, "*dlerror*", 2),
		// LSan's use_ld_allocations (on by default): a block whose
		// allocation call site is inside the dynamic linker (link maps,
		// search paths, DTVs, TLS blocks made by _dl_* functions) is never
		// reported; the loader holds it for the life of the process or
		// of the library, often through pointers a scan cannot follow.
		// Only the call site counts: a leak in a library constructor that
		// ld.so runs further down the stack is still reported.
		builtin(dynamicLinkerCallerRule, dynamicLinkerPattern, 3),
		// gperftools' tcmalloc: its constructor makes a default
		// MallocExtension (8 bytes, once) and overwrites the only pointer
		// to it with its own implementation. lsan run tracks library
		// constructors, so every tcmalloc program would report it.
		builtin(templateRule, "MallocExtension::Register", 4),
	}}
}

func builtin(kind ruleKind, pattern string, line int) *Rule {
	return &Rule{Pattern: pattern, File: builtinFile, Line: line, Default: true, kind: kind}
}
