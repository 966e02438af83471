// Types shared by the kernel tracer's BPF program and its Go loader
// (bpf2go generates the Go side from this file's BTF).
#ifndef KTRACE_H
#define KTRACE_H

// Address spaces of the object map: slab objects (kmalloc and
// kmem_cache_alloc share one, as kfree frees both), pages by pfn, percpu
// areas by their __percpu pointer. Keys of different spaces never meet.
enum kspace {
	SPACE_SLAB = 0,
	SPACE_PAGE = 1,
	SPACE_PERCPU = 2,
};

// Which tracepoint allocated an object.
enum kevent {
	EV_KMALLOC = 0,
	EV_KMEM_CACHE_ALLOC = 1,
	EV_PAGE_ALLOC = 2,
	EV_PERCPU_ALLOC = 3,
};

struct kobj_key {
	__u64 addr; // object address; pfn for pages
	__u32 space; // enum kspace
	__u32 pad;
};

// One live kernel object.
struct kobj {
	__u64 ts_ns; // bpf_ktime_get_ns at allocation
	__u64 call_site; // the tracepoint's call_site (0 for pages)
	__u64 cache; // struct kmem_cache * (kmem_cache_alloc), else 0
	__u64 bytes_req; // requested size (bytes_alloc where not given)
	__u64 bytes_alloc; // size the allocator handed out
	__s32 stack_id; // kernel stack in `stacks`, < 0 when not stored
	__u32 pid; // tgid of the task that allocated it
	__u32 tid;
	__u8 event; // enum kevent
	__u8 order; // pages: log2 of the page count
	__u16 pad;
	char comm[16];
};

// Per-CPU event counters (the index of `counters`).
enum kcounter {
	C_ALLOCS = 0, // allocations recorded
	C_ALLOC_DROPS = 1, // allocations not recorded: object map full
	C_STACK_DROPS = 2, // stacks not stored (stack map full, or a collision)
	C_FREES = 3, // frees of recorded objects
	C_SAMPLED_OUT = 4, // allocations skipped by --sample-rate
	C_FILTERED = 5, // allocations of other processes (--pid) or of lsan
	C_NUM = 6,
};

// Where each value lies among a tp_btf tracepoint's arguments, counted
// from 0 after the hidden __data: filled by the loader from the names of
// the kernel's own __bpf_trace_<event> parameters (BTF). -1: not an
// argument of this kernel's tracepoint.
struct roles {
	__s8 call_site;
	__s8 ptr;
	__s8 bytes_req;
	__s8 bytes_alloc;
	__s8 cache;
	__s8 pad[3];
};

#define MAX_STACK_DEPTH 127 // PERF_MAX_STACK_DEPTH

#endif
