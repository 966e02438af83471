//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
//
// lsan's kernel tracer: the kmem and percpu tracepoints record every live
// kernel object (address, sizes, cache, call site, kernel stack, task, time)
// in the `objects` map, and the matching frees remove it. See
// docs/kernel.md.
//
// Field layouts come from the running kernel, never from this file:
//  - the slab events are tp_btf programs (cheapest: no trace record is
//    built), whose arguments are found by position; the loader reads each
//    argument's name from the kernel's BTF (__bpf_trace_<event>) and puts
//    its position in the event's `roles` (read-only data, so the verifier
//    prunes every branch but the right one);
//  - the page and percpu events read their classic trace records through
//    CO-RE (preserve_access_index), because only the record holds the pfn.

#include "headers/ktrace_types.h"
#include "../bpf/headers/bpf_helpers.h"
#include "../bpf/headers/bpf_tracing.h"
#include "ktrace.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// Record 1 in sample_rate allocations (1 = all of them).
volatile const __u32 sample_rate = 1;
// --pid: record only this process's allocations (0 = every process).
volatile const __u32 target_tgid = 0;
// --no-stacks: no kernel stack walk (most of the cost of a recorded
// allocation); objects are grouped by their call site.
volatile const __u32 no_stacks = 0;
// lsan itself: reading the maps allocates kernel memory, which must not
// feed back into the report.
volatile const __u32 self_tgid = 0;

volatile const struct roles kmalloc_roles = {-1, -1, -1, -1, -1};
volatile const struct roles cache_alloc_roles = {-1, -1, -1, -1, -1};
volatile const struct roles kfree_roles = {-1, -1, -1, -1, -1};
volatile const struct roles cache_free_roles = {-1, -1, -1, -1, -1};

// Preallocated: an update from inside kmalloc's tracepoint must not itself
// allocate. Bounded; a full map counts C_ALLOC_DROPS.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 19); // resized by the loader (--max-objects)
	__type(key, struct kobj_key);
	__type(value, struct kobj);
} objects SEC(".maps");

// Kernel stacks by id. Without BPF_F_REUSE_STACKID a bucket already
// holding another stack refuses the new one (counted, never silent).
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 1 << 14); // resized by the loader (--max-stacks)
	__uint(key_size, sizeof(__u32));
	__uint(value_size, MAX_STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

// struct kmem_cache * -> its name, read once per cache.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, char[32]);
} caches SEC(".maps");

// Per-CPU: millions of events a second machine-wide would contend on one
// shared counter.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_NUM);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

// Put the shared types in BTF for bpf2go.
const struct kobj *unused_kobj __attribute__((unused));
const struct kobj_key *unused_kobj_key __attribute__((unused));
const enum kspace *unused_kspace __attribute__((unused));
const enum kevent *unused_kevent __attribute__((unused));
const enum kcounter *unused_kcounter __attribute__((unused));

static __always_inline void count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);
	if (c)
		*c += 1;
}

// ctx_load reads ctx at a constant offset. Written in asm because clang
// would otherwise step the ctx pointer, which the verifier refuses.
#define ctx_load(ctx, off) ({ \
	__u64 __v; \
	asm volatile("%0 = *(u64 *)(%1 + " #off ")" : "=r"(__v) : "r"(ctx)); \
	__v; \
})

// arg returns argument i of a tp_btf program. i is read-only data, known
// to the verifier, so only the one load of the right argument is checked
// (loading past a tracepoint's last argument would be refused).
static __always_inline __u64 arg(__u64 *ctx, int i)
{
	switch (i) {
	case 0: return ctx_load(ctx, 0);
	case 1: return ctx_load(ctx, 8);
	case 2: return ctx_load(ctx, 16);
	case 3: return ctx_load(ctx, 24);
	case 4: return ctx_load(ctx, 32);
	case 5: return ctx_load(ctx, 40);
	}
	return 0;
}

// kmalloc(0) returns ZERO_SIZE_PTR (16), not an object.
static __always_inline bool is_object(__u64 p)
{
	return p > 16;
}

// wanted decides, before any work, whether this allocation is recorded.
static __always_inline bool wanted(__u32 tgid)
{
	if (tgid == self_tgid || (target_tgid && tgid != target_tgid)) {
		count(C_FILTERED);
		return false;
	}
	if (sample_rate > 1 && bpf_get_prandom_u32() % sample_rate != 0) {
		count(C_SAMPLED_OUT);
		return false;
	}
	return true;
}

static __always_inline void remember_cache(__u64 cache)
{
	if (!cache || bpf_map_lookup_elem(&caches, &cache))
		return;
	struct kmem_cache *s = (struct kmem_cache *)cache;
	const char *name = 0;
	char buf[32] = {};
	bpf_probe_read_kernel(&name, sizeof(name), __builtin_preserve_access_index(&s->name));
	if (name)
		bpf_probe_read_kernel_str(buf, sizeof(buf), name);
	bpf_map_update_elem(&caches, &cache, buf, BPF_NOEXIST);
}

// cache_sizes fills the sizes of a kmem_cache_alloc object from its cache.
static __always_inline void cache_sizes(struct kmem_cache *s, struct kobj *o)
{
	unsigned int object_size = 0, size = 0;
	bpf_probe_read_kernel(&object_size, sizeof(object_size), __builtin_preserve_access_index(&s->object_size));
	bpf_probe_read_kernel(&size, sizeof(size), __builtin_preserve_access_index(&s->size));
	o->bytes_req = object_size;
	o->bytes_alloc = size;
}

static __always_inline void record(void *ctx, __u64 addr, __u32 space, struct kobj *o)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct kobj_key key = {.addr = addr, .space = space};

	o->ts_ns = bpf_ktime_get_ns();
	o->pid = id >> 32;
	o->tid = (__u32)id;
	bpf_get_current_comm(o->comm, sizeof(o->comm));
	// Kernel stack (flags 0); the ORC unwinder walks it.
	if (no_stacks) {
		o->stack_id = -1;
	} else {
		o->stack_id = bpf_get_stackid(ctx, &stacks, 0);
		if (o->stack_id < 0)
			count(C_STACK_DROPS);
	}
	if (bpf_map_update_elem(&objects, &key, o, BPF_ANY) != 0) {
		count(C_ALLOC_DROPS);
		return;
	}
	count(C_ALLOCS);
}

static __always_inline void forget(__u64 addr, __u32 space)
{
	struct kobj_key key = {.addr = addr, .space = space};
	if (bpf_map_delete_elem(&objects, &key) == 0)
		count(C_FREES);
}

static __always_inline int slab_alloc(__u64 *ctx, volatile const struct roles *r, __u8 event)
{
	__u64 ptr = arg(ctx, r->ptr);
	if (!is_object(ptr) || !wanted(bpf_get_current_pid_tgid() >> 32))
		return 0;
	struct kobj o = {.event = event};
	if (r->call_site >= 0)
		o.call_site = arg(ctx, r->call_site);
	if (r->bytes_alloc >= 0)
		o.bytes_alloc = arg(ctx, r->bytes_alloc);
	if (r->bytes_req >= 0)
		o.bytes_req = arg(ctx, r->bytes_req);
	if (r->cache >= 0) {
		o.cache = arg(ctx, r->cache);
		remember_cache(o.cache);
		if (r->bytes_alloc < 0 && o.cache)
			cache_sizes((struct kmem_cache *)o.cache, &o);
	}
	record(ctx, ptr, SPACE_SLAB, &o);
	return 0;
}

SEC("tp_btf/kmalloc")
int kmalloc(__u64 *ctx)
{
	return slab_alloc(ctx, &kmalloc_roles, EV_KMALLOC);
}

SEC("tp_btf/kmem_cache_alloc")
int kmem_cache_alloc(__u64 *ctx)
{
	return slab_alloc(ctx, &cache_alloc_roles, EV_KMEM_CACHE_ALLOC);
}

SEC("tp_btf/kfree")
int kfree(__u64 *ctx)
{
	__u64 ptr = arg(ctx, kfree_roles.ptr);
	if (is_object(ptr))
		forget(ptr, SPACE_SLAB);
	return 0;
}

SEC("tp_btf/kmem_cache_free")
int kmem_cache_free(__u64 *ctx)
{
	__u64 ptr = arg(ctx, cache_free_roles.ptr);
	if (is_object(ptr))
		forget(ptr, SPACE_SLAB);
	return 0;
}

SEC("tracepoint/kmem/mm_page_alloc")
int mm_page_alloc(struct trace_event_raw_mm_page_alloc *rec)
{
	if (!wanted(bpf_get_current_pid_tgid() >> 32))
		return 0;
	__u32 order = rec->order;
	struct kobj o = {.event = EV_PAGE_ALLOC, .order = order};
	o.bytes_req = o.bytes_alloc = 4096ULL << (order & 31);
	record(rec, rec->pfn, SPACE_PAGE, &o);
	return 0;
}

SEC("tracepoint/kmem/mm_page_free")
int mm_page_free(struct trace_event_raw_mm_page_free *rec)
{
	forget(rec->pfn, SPACE_PAGE);
	return 0;
}

SEC("tracepoint/kmem/mm_page_free_batched")
int mm_page_free_batched(struct trace_event_raw_mm_page_free_batched *rec)
{
	forget(rec->pfn, SPACE_PAGE);
	return 0;
}

SEC("tracepoint/percpu/percpu_alloc_percpu")
int percpu_alloc(struct trace_event_raw_percpu_alloc_percpu *rec)
{
	__u64 ptr = (__u64)rec->ptr;
	if (!ptr || !wanted(bpf_get_current_pid_tgid() >> 32))
		return 0;
	struct kobj o = {.event = EV_PERCPU_ALLOC, .call_site = rec->call_site};
	o.bytes_req = rec->size;
	// bytes_alloc (all CPUs' copies) is newer than the event itself.
	if (bpf_core_field_exists(rec->bytes_alloc))
		o.bytes_alloc = rec->bytes_alloc;
	else
		o.bytes_alloc = o.bytes_req;
	record(rec, ptr, SPACE_PERCPU, &o);
	return 0;
}

SEC("tracepoint/percpu/percpu_free_percpu")
int percpu_free(struct trace_event_raw_percpu_free_percpu *rec)
{
	forget((__u64)rec->ptr, SPACE_PERCPU);
	return 0;
}
