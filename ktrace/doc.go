// Package ktrace traces live kernel allocations: BPF programs on the kmem
// and percpu tracepoints record every object the kernel allocates (slab
// objects from kmalloc and kmem_cache_alloc, pages by pfn, percpu areas)
// with its sizes, cache, call site, kernel stack, task and time, and forget
// it when it is freed.
//
// Entry point:
//
//	t, err := ktrace.Open(ktrace.Options{MaxObjects: 1 << 19})
//	defer t.Close()
//	snap, err := t.Snapshot() // live objects, stacks, cache names, counters
//
// Guarantees: field layouts come from the running kernel's BTF (tp_btf
// arguments by their names in __bpf_trace_<event>, trace records through
// CO-RE), never from fixed offsets; every tracepoint this kernel lacks is
// named in Tracer.Events; the object map is bounded and every allocation
// or stack that could not be stored is counted (Snapshot.Counters), never
// dropped silently. Close detaches every program. docs/kernel.md has the
// design.
package ktrace
