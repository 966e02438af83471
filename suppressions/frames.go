package suppressions

import (
	"path/filepath"
	"strings"

	"github.com/lsan-project/lsan/symbolize"
)

// This file classifies stack frames: which belong to the allocator, the C
// and C++ runtimes or the dynamic linker, and which are the program's own
// code. The dynamic-linker default rule and Suggest rely on it.

// allocatorFunctions are the allocation entry points that can head an
// allocation stack: the C allocator, glibc's internal aliases, and the names
// sanitizer runtimes give their interceptors once the prefix is stripped.
var allocatorFunctions = setOf(
	"malloc", "calloc", "realloc", "reallocarray", "free", "cfree",
	"posix_memalign", "aligned_alloc", "memalign", "valloc", "pvalloc",
	"__libc_malloc", "__libc_calloc", "__libc_realloc", "__libc_memalign",
	"__libc_valloc", "__libc_pvalloc", "__libc_reallocarray",
	"__posix_memalign", "__libc_free",
	"mallocx", "rallocx", "xallocx", // jemalloc's non-standard API
)

// interceptorPrefixes are stripped before looking a name up in
// allocatorFunctions: LSan and ASan name their malloc "__interceptor_malloc"
// (and "___interceptor_malloc" in newer releases).
var interceptorPrefixes = []string{"___interceptor_", "__interceptor_", "__interceptor_trampoline_"}

// allocatorModulePrefixes name replacement allocators: every frame inside
// them is allocator code.
var allocatorModulePrefixes = []string{"libjemalloc.", "libtcmalloc", "libmimalloc."}

// runtimeModulePrefixes are the libraries whose frames are not the
// program's own code: C library, dynamic linker, C++ runtime, unwinder,
// allocators and sanitizer runtimes.
var runtimeModulePrefixes = []string{
	"libc.so", "libc-2.", "libc.musl", "ld-linux", "ld64.so", "ld.so", "ld-musl",
	"libpthread.so", "libpthread-", "libdl.so", "libdl-", "librt.so", "librt-",
	"libm.so", "libm-",
	"libstdc++.so", "libc++.so", "libc++abi.so", "libgcc_s.so", "libunwind.so",
	"libjemalloc.", "libtcmalloc", "libmimalloc.",
	"liblsan.so", "libasan.so", "libhwasan.so", "libtsan.so", "libubsan.so", "libclang_rt.",
}

// runtimeFunctionPrefixes catch runtime code compiled into the program
// itself: C++ standard-library templates instantiated there, and the C
// library of a static executable.
var runtimeFunctionPrefixes = []string{
	"std::", "__gnu_cxx::", "__cxxabiv1::", "__cxa_", "operator new", "operator delete",
	"_Znw", "_Zna", "_ZNSt", "_ZNKSt", "_ZSt", "_ZN9__gnu_cxx", "_ZNK9__gnu_cxx",
	"__sanitizer::", "__lsan::", "__asan::", "__lsan_", "__asan_",
	"__libc_", "_IO_", "__GI_", "_dl_", "__nss_", "_nl_", "__tls_get_addr",
}

// entryPoints are functions that sit at the bottom of every stack of a
// process or thread: a rule naming one would hide every leak.
var entryPoints = setOf(
	"main", "_start", "__libc_start_main", "__libc_start_call_main",
	"start_thread", "clone", "clone3", "thread_start",
)

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// isAllocatorFunction reports whether name is an allocation entry point.
func isAllocatorFunction(name string) bool {
	for _, p := range interceptorPrefixes {
		name = strings.TrimPrefix(name, p)
	}
	return allocatorFunctions[name]
}

// isAllocatorPC reports whether one PC's frames are allocator code: its
// outermost frame is an allocation entry point, or it lies in a replacement
// allocator library.
func isAllocatorPC(frames []symbolize.Frame) bool {
	last := frames[len(frames)-1]
	return isAllocatorFunction(last.Function) || hasBasePrefix(last.Module, allocatorModulePrefixes)
}

// callSite returns the frames of the allocation's call site: the first PC
// after the allocator's own frames (the whole stack may start there already).
func callSite(stack []symbolize.Frame) []symbolize.Frame {
	for _, pc := range splitByPC(stack) {
		if !isAllocatorPC(pc) {
			return pc
		}
	}
	return nil
}

// isDynamicLinker reports whether module is glibc's dynamic linker
// (ld-linux-x86-64.so.2, ld-linux-aarch64.so.1, ld64.so.2, ld.so.1, …).
// musl is deliberately left out: its loader is the C library itself, so
// "called from the loader" would also cover strdup and fopen.
func isDynamicLinker(module string) bool {
	return hasBasePrefix(module, []string{"ld-linux", "ld64.so.", "ld.so."})
}

func isRuntimeModule(module string) bool {
	return hasBasePrefix(module, runtimeModulePrefixes)
}

func isRuntimeFunction(name string) bool {
	if isAllocatorFunction(name) {
		return true
	}
	for _, p := range runtimeFunctionPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// isRuntimeFrame reports whether f is allocator or runtime-library code
// rather than the program's own.
func isRuntimeFrame(f symbolize.Frame) bool {
	return isRuntimeModule(f.Module) || isRuntimeFunction(f.Function)
}

// looksLikeAllocWrapper guesses whether a function of the program merely
// wraps the allocator (xmalloc, g_malloc0, zmalloc_usable, xstrdup,
// apr_palloc, OPENSSL_zalloc): a rule naming a wrapper would hide every
// leak allocated through it, so Suggest prefers the wrapper's caller.
func looksLikeAllocWrapper(function string) bool {
	name := strings.ToLower(baseName(function))
	for _, s := range []string{"malloc", "calloc", "realloc", "memalign", "strdup", "strndup"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return strings.HasSuffix(name, "alloc")
}

// baseName strips a C++ name down to its last component without
// parameters: "ns::Pool::alloc(unsigned long) const" gives "alloc".
func baseName(function string) string {
	if i := strings.IndexByte(function, '('); i > 0 {
		function = function[:i]
	}
	if i := strings.LastIndex(function, "::"); i >= 0 {
		function = function[i+2:]
	}
	return function
}

func hasBasePrefix(path string, prefixes []string) bool {
	if path == "" {
		return false
	}
	base := filepath.Base(path)
	for _, p := range prefixes {
		if strings.HasPrefix(base, p) {
			return true
		}
	}
	return false
}
