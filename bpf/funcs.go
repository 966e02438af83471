package bpf

// probeKind says which BPF program handles a function's entry and whether
// its return is probed too.
type probeKind int

const (
	kindMalloc        probeKind = iota // size in arg 1: malloc, valloc, pvalloc, operator new
	kindCalloc                         // nmemb, size
	kindRealloc                        // ptr, size
	kindReallocarray                   // ptr, nmemb, size
	kindMemalign                       // alignment, size: memalign, aligned_alloc
	kindPosixMemalign                  // memptr, alignment, size
	kindStrdup                         // size known only to the nested malloc
	kindFree                           // ptr in arg 1: free, operator delete
	kindExit                           // _exit: lsan run stops the process there
)

// allocates says whether a function returns a block (and so needs a
// return probe).
func (k probeKind) allocates() bool { return k != kindFree && k != kindExit }

// AllocatorFunc is one function lsan probes.
type AllocatorFunc struct {
	Name string
	kind probeKind
	// Required functions must be found, or attaching fails.
	Required bool
}

// The C++ operators, by their Itanium-mangled names. libstdc++'s operator
// new keeps no frame pointer: without a probe on it, the function that
// called new would vanish from every stack.
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

// AllocatorFuncs is every function lsan probes, in cookie order: a block's
// Fn is an index into this table. Not malloc_usable_size or mallctl:
// they allocate nothing, and redis calls the former twice per allocation.
var AllocatorFuncs = buildFuncTable()

func buildFuncTable() []AllocatorFunc {
	t := []AllocatorFunc{
		{Name: "malloc", kind: kindMalloc, Required: true},
		{Name: "free", kind: kindFree, Required: true},
		{Name: "calloc", kind: kindCalloc},
		{Name: "realloc", kind: kindRealloc},
		{Name: "reallocarray", kind: kindReallocarray},
		{Name: "posix_memalign", kind: kindPosixMemalign},
		{Name: "aligned_alloc", kind: kindMemalign},
		{Name: "memalign", kind: kindMemalign},
		{Name: "valloc", kind: kindMalloc},
		{Name: "pvalloc", kind: kindMalloc},
		{Name: "strdup", kind: kindStrdup},
		{Name: "strndup", kind: kindStrdup},
		// Other names of free and realloc: a release lsan does not see
		// would leave its block looking leaked. cfree is glibc's old
		// alias; free_sized and free_aligned_sized are C23's; the *allocx
		// functions are jemalloc's non-standard API (redis may call them).
		{Name: "cfree", kind: kindFree},
		{Name: "free_sized", kind: kindFree},
		{Name: "free_aligned_sized", kind: kindFree},
		{Name: "sdallocx", kind: kindFree},
		{Name: "dallocx", kind: kindFree},
		{Name: "rallocx", kind: kindRealloc},
		{Name: "mallocx", kind: kindMalloc},
		{Name: "_exit", kind: kindExit},
		{Name: "_Exit", kind: kindExit},
	}
	for _, n := range cxxNew {
		t = append(t, AllocatorFunc{Name: n, kind: kindMalloc})
	}
	for _, n := range cxxDelete {
		t = append(t, AllocatorFunc{Name: n, kind: kindFree})
	}
	return t
}

func funcNames() []string {
	names := make([]string, len(AllocatorFuncs))
	for i, f := range AllocatorFuncs {
		names[i] = f.Name
	}
	return names
}

// FuncName names the allocator function of a Block.Fn ("" if unknown).
func FuncName(fn uint16) string {
	if int(fn) < len(AllocatorFuncs) {
		return AllocatorFuncs[fn].Name
	}
	return ""
}
