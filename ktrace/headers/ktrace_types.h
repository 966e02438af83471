// The few kernel types the kernel tracer needs, instead of a whole
// generated vmlinux.h. Every struct that the program reads carries
// preserve_access_index: CO-RE relocates its fields against the running
// kernel's BTF, so the offsets written here never matter, only the names.
#ifndef KTRACE_TYPES_H
#define KTRACE_TYPES_H

#define __VMLINUX_H__

typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
enum { false = 0, true = 1 };

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_STACK_TRACE = 7,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
};

// Does this kernel's type have the field? (libbpf's bpf_core_read.h,
// BPF_FIELD_EXISTS.)
#define bpf_core_field_exists(field) __builtin_preserve_field_info(field, 2)

// Read by kmem_cache_alloc: the cache's name, and the object sizes when
// the tracepoint does not pass them (it stopped doing so in Linux 6.2).
struct kmem_cache {
	const char *name;
	unsigned int object_size;
	unsigned int size;
} __attribute__((preserve_access_index));

// The records of the classic tracepoints whose tp_btf arguments lack what
// lsan needs: the page events' records hold the pfn (their arguments only
// a struct page pointer), the percpu record names its fields.
struct trace_event_raw_mm_page_alloc {
	unsigned long pfn;
	unsigned int order;
} __attribute__((preserve_access_index));

struct trace_event_raw_mm_page_free {
	unsigned long pfn;
	unsigned int order;
} __attribute__((preserve_access_index));

struct trace_event_raw_mm_page_free_batched {
	unsigned long pfn;
} __attribute__((preserve_access_index));

struct trace_event_raw_percpu_alloc_percpu {
	unsigned long call_site;
	unsigned long size;
	void *ptr;
	unsigned long bytes_alloc;
} __attribute__((preserve_access_index));

struct trace_event_raw_percpu_free_percpu {
	void *ptr;
} __attribute__((preserve_access_index));

#endif
