package bpf

import "fmt"

// callOp is what a call does with blocks: the BPF program's enum op
// (lsan.h), plus the kinds that have programs of their own.
type callOp uint8

const (
	opAlloc         = callOp(tracerOpOP_MALLOC)         // returns a new block
	opRealloc       = callOp(tracerOpOP_REALLOC)        // ptr: the old block; returns the new one
	opPosixMemalign = callOp(tracerOpOP_POSIX_MEMALIGN) // ptr: where the block is stored; returns 0 on success
	opResize        = callOp(tracerOpOP_RESIZE)         // ptr: a block resized in place; returns its new size
	opFree          = callOp(0x10)                      // ptr: the block released
	opBulkFree      = callOp(0x11)                      // releases blocks lsan cannot name (mi_heap_destroy)
	opExit          = callOp(0x12)                      // _exit: lsan run stops the process there
	opMapsChanged   = callOp(0x13)                      // the dynamic linker mapped or unmapped objects
)

// Signature flags (lsan.h enum sig_flags).
const (
	// sigFreesOnFailure: a failed call releases the old block (reallocf).
	sigFreesOnFailure = uint8(tracerSigFlagsSIG_FREES_ON_FAILURE)
	// sigAllocatesIfPtrNull: the call allocates only when its ptr
	// argument is NULL (realpath(path, NULL)).
	sigAllocatesIfPtrNull = uint8(tracerSigFlagsSIG_ALLOCATES_IF_PTR_NULL)
	// sigHeaderSize: a free whose chunk header gives the size of a block
	// lsan did not see allocated (glibc's, set by the loader).
	sigHeaderSize = uint8(tracerSigFlagsSIG_HEADER_SIZE)
)

// signature says where a function's arguments are and what its call does.
// Argument positions count from 1, 0 meaning none.
type signature struct {
	op callOp
	// size is the argument holding the byte size; 0: the size is known
	// only to the nested malloc (strdup).
	size uint8
	// count multiplies size (calloc's nmemb).
	count uint8
	// ptr is the old block (realloc, resize), where the result is stored
	// (posix_memalign), the freed block (free), or the argument that
	// decides whether anything is allocated (sigAllocatesIfPtrNull).
	ptr   uint8
	flags uint8
}

func alloc(size uint8) signature         { return signature{op: opAlloc, size: size} }
func allocN(count, size uint8) signature { return signature{op: opAlloc, size: size, count: count} }
func realloc(ptr, size uint8) signature  { return signature{op: opRealloc, ptr: ptr, size: size} }
func reallocN(ptr, count, size uint8) signature {
	return signature{op: opRealloc, ptr: ptr, size: size, count: count}
}
func free(ptr uint8) signature { return signature{op: opFree, ptr: ptr} }

// dup is a strdup-like call: the nested malloc gives the size.
var dup = signature{op: opAlloc}

func (s signature) withFlags(f uint8) signature { s.flags |= f; return s }

// allocates says whether a call hands out a block (and so its end is
// probed too).
func (s signature) allocates() bool {
	return s.op == opAlloc || s.op == opRealloc || s.op == opPosixMemalign || s.op == opResize
}

// args is how many argument registers the entry program reads.
func (s signature) args() int { return int(max(s.size, s.count, s.ptr)) }

// cookie is the entry probe's attach cookie (lsan.h): the function's
// index and its signature.
func (s signature) cookie(index uint16) uint64 {
	return uint64(index) | uint64(s.op&0xf)<<32 | uint64(s.size)<<36 |
		uint64(s.count)<<40 | uint64(s.ptr)<<44 | uint64(s.flags)<<48
}

// AllocatorFunc is one function lsan probes.
type AllocatorFunc struct {
	Name string
	// Object, when set, is the only object the function is looked up in
	// (a path as the target sees it, or a file name); user-named
	// functions may name one.
	Object string
	// Family groups functions for documentation: libc, c++, jemalloc,
	// tcmalloc, mimalloc, user.
	Family string
	sig    signature
	// Required functions must be found, or attaching fails.
	Required bool
}

func (f AllocatorFunc) String() string {
	if f.Object != "" {
		return f.Object + ":" + f.Name
	}
	return f.Name
}

// AllocatorFuncs is every function lsan probes by default, in cookie
// order: a block's Fn is an index into a tracer's table, which starts with
// this one. Not malloc_usable_size or mallctl: they allocate nothing, and
// redis calls the former twice per allocation. Aliases (tcmalloc's
// tc_malloc is malloc) resolve to one address and are probed once.
var AllocatorFuncs = buildFuncTable()

func buildFuncTable() []AllocatorFunc {
	var t []AllocatorFunc
	add := func(family string, sig signature, names ...string) {
		for _, n := range names {
			t = append(t, AllocatorFunc{Name: n, Family: family, sig: sig})
		}
	}
	t = append(t,
		AllocatorFunc{Name: "malloc", Family: "libc", sig: alloc(1), Required: true},
		AllocatorFunc{Name: "free", Family: "libc", sig: free(1), Required: true})
	add("libc", allocN(1, 2), "calloc")
	add("libc", realloc(1, 2), "realloc")
	add("libc", reallocN(1, 2, 3), "reallocarray")
	add("libc", signature{op: opPosixMemalign, ptr: 1, size: 3}, "posix_memalign")
	add("libc", alloc(2), "aligned_alloc", "memalign")
	add("libc", alloc(1), "valloc", "pvalloc")
	add("libc", dup, "strdup", "strndup")
	// Other names of free: a release lsan does not see would leave its
	// block looking leaked. cfree is glibc's old alias; free_sized and
	// free_aligned_sized are C23's.
	add("libc", free(1), "cfree", "free_sized", "free_aligned_sized")
	// BSD's reallocf (mimalloc exports it): a failure frees the block.
	add("libc", realloc(1, 2).withFlags(sigFreesOnFailure), "reallocf")
	add("libc", signature{op: opExit}, "_exit", "_Exit")
	// glibc's and musl's dynamic linkers export their debugger hook.
	add("ld.so", signature{op: opMapsChanged}, "_dl_debug_state")
	// The C++ operators, by their Itanium-mangled names. libstdc++'s
	// operator new keeps no frame pointer: without a probe on it, the
	// function that called new would vanish from frame-pointer stacks.
	add("c++", alloc(1), cxxNew...)
	add("c++", free(1), cxxDelete...)
	addJemalloc(add)
	addTcmalloc(add)
	addMimalloc(add)
	return t
}

var cxxNew = []string{
	"_Znwm", "_Znam", // new(size_t), new[](size_t)
	"_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
	"_ZnwmSt11align_val_t", "_ZnamSt11align_val_t",
	"_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
}

var cxxDelete = []string{
	"_ZdlPv", "_ZdaPv", // delete(void*), delete[](void*)
	"_ZdlPvm", "_ZdaPvm", // sized
	"_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t",
	"_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
	"_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
	"_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
}

type addFunc func(family string, sig signature, names ...string)

// addJemalloc: jemalloc's non-standard API (redis calls mallocx and
// dallocx for active defragmentation), and every entry point of a build
// with the je_ prefix (--with-jemalloc-prefix=je_, as redis's bundled
// copy), which leaves the standard names to glibc.
func addJemalloc(add addFunc) {
	api := func(prefix string) {
		add("jemalloc", alloc(1), prefix+"mallocx")
		add("jemalloc", realloc(1, 2), prefix+"rallocx")
		// xallocx resizes in place and returns the block's new real size.
		add("jemalloc", signature{op: opResize, ptr: 1}, prefix+"xallocx")
		add("jemalloc", free(1), prefix+"sdallocx", prefix+"dallocx")
	}
	api("")
	api("je_")
	add("jemalloc", alloc(1), "je_malloc", "je_valloc")
	add("jemalloc", allocN(1, 2), "je_calloc")
	add("jemalloc", realloc(1, 2), "je_realloc")
	add("jemalloc", free(1), "je_free")
	add("jemalloc", signature{op: opPosixMemalign, ptr: 1, size: 3}, "je_posix_memalign")
	add("jemalloc", alloc(2), "je_aligned_alloc", "je_memalign")
}

// addTcmalloc: gperftools' tc_* entry points. In libtcmalloc they are
// aliases of the standard names; a static or renamed build may keep only
// these.
func addTcmalloc(add addFunc) {
	add("tcmalloc", alloc(1), "tc_malloc", "tc_malloc_skip_new_handler", "tc_valloc", "tc_pvalloc",
		"tc_new", "tc_newarray", "tc_new_nothrow", "tc_newarray_nothrow",
		"tc_new_aligned", "tc_newarray_aligned", "tc_new_aligned_nothrow", "tc_newarray_aligned_nothrow")
	add("tcmalloc", allocN(1, 2), "tc_calloc")
	add("tcmalloc", realloc(1, 2), "tc_realloc")
	add("tcmalloc", alloc(2), "tc_memalign")
	add("tcmalloc", signature{op: opPosixMemalign, ptr: 1, size: 3}, "tc_posix_memalign")
	add("tcmalloc", free(1), "tc_free", "tc_cfree", "tc_free_sized", "tc_free_aligned_sized",
		"tc_delete", "tc_deletearray", "tc_delete_nothrow", "tc_deletearray_nothrow",
		"tc_delete_sized", "tc_deletearray_sized", "tc_delete_aligned", "tc_deletearray_aligned",
		"tc_delete_sized_aligned", "tc_deletearray_sized_aligned",
		"tc_delete_aligned_nothrow", "tc_deletearray_aligned_nothrow")
}

// addMimalloc: mimalloc's API. Where it overrides malloc (preloaded or
// linked with override), malloc and mi_malloc are one function; the mi_*
// calls that are not aliases (mi_zalloc, the aligned family, mi_strdup,
// the heap functions) need probes of their own. Calls nested in another
// probed call (mi_strdup -> mi_heap_malloc) are the outer call's.
func addMimalloc(add addFunc) {
	add("mimalloc", alloc(1), "mi_malloc", "mi_zalloc", "mi_malloc_small", "mi_zalloc_small",
		"mi_malloc_aligned", "mi_malloc_aligned_at", "mi_zalloc_aligned", "mi_zalloc_aligned_at",
		"mi_valloc", "mi_pvalloc", "mi_new", "mi_new_nothrow", "mi_new_aligned", "mi_new_aligned_nothrow")
	add("mimalloc", allocN(1, 2), "mi_calloc", "mi_mallocn", "mi_calloc_aligned", "mi_calloc_aligned_at", "mi_new_n")
	add("mimalloc", alloc(2), "mi_memalign", "mi_aligned_alloc",
		"mi_heap_malloc", "mi_heap_zalloc", "mi_heap_malloc_small", "mi_heap_malloc_aligned",
		"mi_heap_malloc_aligned_at", "mi_heap_zalloc_aligned", "mi_heap_zalloc_aligned_at", "mi_heap_alloc_new")
	add("mimalloc", allocN(2, 3), "mi_heap_calloc", "mi_heap_mallocn", "mi_heap_calloc_aligned",
		"mi_heap_calloc_aligned_at", "mi_heap_alloc_new_n")
	add("mimalloc", signature{op: opPosixMemalign, ptr: 1, size: 3}, "mi_posix_memalign")
	add("mimalloc", realloc(1, 2), "mi_realloc", "mi_rezalloc", "mi_realloc_aligned", "mi_realloc_aligned_at",
		"mi_rezalloc_aligned", "mi_rezalloc_aligned_at", "mi_new_realloc",
		// mi_expand resizes in place or fails: a realloc that never moves.
		"mi_expand")
	add("mimalloc", realloc(1, 2).withFlags(sigFreesOnFailure), "mi_reallocf")
	add("mimalloc", reallocN(1, 2, 3), "mi_reallocn", "mi_recalloc", "mi_reallocarray", "mi_recalloc_aligned",
		"mi_recalloc_aligned_at", "mi_aligned_recalloc", "mi_aligned_offset_recalloc", "mi_new_reallocn")
	add("mimalloc", realloc(2, 3), "mi_heap_realloc", "mi_heap_rezalloc", "mi_heap_realloc_aligned",
		"mi_heap_realloc_aligned_at", "mi_heap_rezalloc_aligned", "mi_heap_rezalloc_aligned_at")
	add("mimalloc", realloc(2, 3).withFlags(sigFreesOnFailure), "mi_heap_reallocf")
	add("mimalloc", reallocN(2, 3, 4), "mi_heap_reallocn", "mi_heap_recalloc", "mi_heap_recalloc_aligned",
		"mi_heap_recalloc_aligned_at")
	add("mimalloc", dup, "mi_strdup", "mi_strndup", "mi_heap_strdup", "mi_heap_strndup", "mi_wcsdup", "mi_mbsdup")
	// realpath(path, resolved) allocates only when resolved is NULL.
	add("mimalloc", signature{op: opAlloc, ptr: 2, flags: sigAllocatesIfPtrNull}, "mi_realpath")
	add("mimalloc", signature{op: opAlloc, ptr: 3, flags: sigAllocatesIfPtrNull}, "mi_heap_realpath")
	add("mimalloc", free(1), "mi_free", "mi_cfree", "mi_free_size", "mi_free_aligned", "mi_free_size_aligned")
	// mi_heap_destroy frees every block of a heap without a free call
	// each: what lsan held as live there is unknown from then on.
	add("mimalloc", signature{op: opBulkFree}, "mi_heap_destroy")
}

// funcTable is a tracer's table: the default functions, then the
// user-named ones (a user-named function replaces a default one of the
// same name).
func funcTable(user []AllocatorFunc) []AllocatorFunc {
	t := make([]AllocatorFunc, 0, len(AllocatorFuncs)+len(user))
	for _, f := range AllocatorFuncs {
		if !namedIn(user, f.Name) {
			t = append(t, f)
		}
	}
	return append(t, user...)
}

func namedIn(fs []AllocatorFunc, name string) bool {
	for _, f := range fs {
		if f.Name == name {
			return true
		}
	}
	return false
}

// maxFuncs bounds a tracer's table: the cookie keeps the index in 16 bits.
const maxFuncs = 1 << 16

func checkTable(t []AllocatorFunc) error {
	if len(t) > maxFuncs {
		return fmt.Errorf("%d allocator functions: at most %d", len(t), maxFuncs)
	}
	return nil
}

func funcNames(t []AllocatorFunc) []string {
	names := make([]string, len(t))
	for i, f := range t {
		names[i] = f.Name
	}
	return names
}

// Funcs is the tracer's function table: Block.Fn indexes it.
func (t *Tracer) Funcs() []AllocatorFunc { return t.funcs }

// FuncName names the allocator function of a Block.Fn ("" if unknown).
func (t *Tracer) FuncName(fn uint16) string {
	if int(fn) < len(t.funcs) {
		return t.funcs[fn].Name
	}
	return ""
}
