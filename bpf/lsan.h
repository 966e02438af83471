// Types shared by the BPF program and the Go loader (bpf2go generates the
// Go side from them).
#ifndef LSAN_H
#define LSAN_H

// Frames kept per stack. LSan keeps 30 by default (malloc_context_size).
#define MAX_STACK_DEPTH 64

// How far above its entry value the stack pointer is when the function
// has returned: x86's ret pops the return address; arm64 keeps it in a
// register.
#if defined(__TARGET_ARCH_x86)
#define RETURN_SP_DELTA 8
#else
#define RETURN_SP_DELTA 0
#endif

// Processes traced at once (the first and, with --follow-forks, its
// descendants alive at the same time).
#define MAX_TARGETS 4096

#define SIGSTOP 19

// An in-flight call older than this is taken as abandoned.
#define STALE_CALL_NS (1000ULL * 1000 * 1000)

// The attach cookie of an entry probe: which allocator function it is
// (an index into the loader's table) and its signature: what the call does
// (enum op), where its arguments are (positions from 1, 0 for none) and
// enum sig_flags. One program serves every allocating function this way,
// the loader's table (bpf/funcs.go) says which is which, and functions the
// user names (--alloc-fn) need no program of their own.
#define COOKIE_FN(c) ((__u16)((c) & 0xffff))
#define COOKIE_OP(c) ((__u8)(((c) >> 32) & 0xf))
#define COOKIE_SIZE_ARG(c) ((__u32)(((c) >> 36) & 0xf))
#define COOKIE_COUNT_ARG(c) ((__u32)(((c) >> 40) & 0xf))
#define COOKIE_PTR_ARG(c) ((__u32)(((c) >> 44) & 0xf))
#define COOKIE_SIG_FLAGS(c) ((__u8)(((c) >> 48) & 0xff))

enum sig_flags {
	SIG_FREES_ON_FAILURE = 1,      // a failed call releases the old block (reallocf)
	SIG_ALLOCATES_IF_PTR_NULL = 2, // allocates only when the ptr argument is NULL (realpath)
	SIG_HEADER_SIZE = 4,           // a free whose chunk header gives the block's size (glibc)
};

// The attach cookie of an exit-site probe: where the result is.
#define COOKIE_EXIT_KIND(c) ((c) & 0xff)
enum exit_kind {
	EXIT_RETURN = 0,     // a ret: the result is in rax
	EXIT_TAIL_FIRST = 1, // a tail jump to memset/memcpy: the result is their first argument
};

enum op {
	OP_MALLOC = 1,         // returns the block (malloc, calloc, new, memalign, ...)
	OP_REALLOC = 2,        // arg = old block
	OP_POSIX_MEMALIGN = 3, // arg = where the block is stored; returns 0 on success
	OP_IGNORE = 4,         // a call that fails by construction (calloc overflow)
	OP_RESIZE = 5,         // arg = a block resized in place; returns its new size (xallocx)
};

enum inflight_flags {
	INFLIGHT_SIZE_FROM_NESTED = 1, // strdup: the nested malloc gives the size
	INFLIGHT_FREES_ON_FAILURE = 2, // reallocf: a failure releases the old block
};

enum counter {
	COUNTER_ALLOCS = 0,           // blocks recorded
	COUNTER_FREES = 1,            // tracked blocks released
	COUNTER_ALLOC_DROPPED = 2,    // allocs map full
	COUNTER_STACK_DROPPED = 3,    // stack not captured or stacks map full
	COUNTER_INFLIGHT_DROPPED = 4, // in-flight map update failed
	COUNTER_FOREIGN_HITS = 5,     // probe hits from other processes
	COUNTER_EXIT_STOPS = 6,       // lsan run: stops at _exit
	COUNTER_FORKS = 7,            // --follow-forks: children stopped at birth
	COUNTER_EVENTS_DROPPED = 8,   // event ring buffer full
	COUNTER_FREES_MISSED = 9,     // a block recorded at an address still live: its free was not seen
	COUNTER_FREED_DROPPED = 10,   // freed map full: a freed range not remembered
	COUNTER_BULK_FREES = 11,      // calls that freed blocks lsan cannot name (mi_heap_destroy)
	COUNTER_MAX = 12,
};

// A range the target freed since attach (attach mode leaves it out of the
// roots: stale pointers in freed memory must not keep leaks alive).
struct freed {
	__u64 size;       // bytes freed
	__u64 time_ns;    // CLOCK_MONOTONIC at the free
	__u16 generation; // the target's exec generation at the free
	__u16 _pad[3];
};

// A traced process. The loader adds the first; with --follow-forks the
// fork program adds each child of a traced process.
struct target {
	__u32 parent;     // tgid of the traced process it forked from, 0 for the first
	__u16 generation; // execve calls since it became a target
	// maps_seq counts the dynamic linker's calls of its debugger hook
	// (dlopen, dlclose): the loader's mapping list for the process is
	// current only while its maps_seq is this one (bpf/unwind.h).
	__u16 maps_seq;
};

// Blocks are keyed by process as well as address: after fork, parent and
// child hand out the same addresses.
struct block_key {
	__u64 addr;
	__u32 tgid;
	__u32 _pad;
};

enum event_type {
	EVENT_FORK = 1,      // tgid forked child; the child is stopped, waiting for its probes
	EVENT_EXIT_STOP = 2, // tgid called _exit and is stopping itself for the final check
	EVENT_MAPS = 3,      // tgid execs or its dynamic linker mapped objects: load their unwind rows (child 1: it is stopping itself until they are)
};

struct event {
	__u32 type;
	__u32 tgid;
	__u32 child;
	__u32 _pad;
};

// A stack the probe could not finish because the process's mapping list
// was out of date (a module dlopened or an image exec'd since the loader
// last read it): the walk's start and a copy of the stack above it, for
// the loader to walk again once the rows are loaded (bpf/late.go). The
// copy is whole pages from the one holding sp: at least
// (LATE_STACK_PAGES - 1) pages above sp when the stack is that deep.
#define LATE_STACK_PAGES 5
#define LATE_PAGE 4096

struct late_stack {
	__u32 tgid;
	__u32 pages;         // pages copied
	__u64 addr;          // the block
	__u64 timestamp_ns;  // the block's, to tell it from a later one at addr
	__u64 stack_id;      // the stack the probe stored for it
	__u64 pc, sp, bp;    // the walk's start (pc: the call site's return address)
	__u64 base;          // address of bytes[0], sp's page
	__u8 bytes[LATE_STACK_PAGES * LATE_PAGE];
};

struct block {
	__u64 size;         // requested size
	__u64 timestamp_ns; // CLOCK_MONOTONIC at allocation
	__u64 stack_id;     // key in the stacks map, 0 = no stack
	__u32 tid;
	__u16 fn;         // allocator function (loader's table index)
	__u16 generation; // exec_generation when allocated
};

struct stack {
	__u32 len; // frames in pcs
	__u32 _pad;
	__u64 pcs[MAX_STACK_DEPTH];
};

struct inflight {
	__u64 entry_sp;
	__u64 start_ns;
	__u64 size;
	__u64 arg;
	__u16 fn;
	__u8 op;
	__u8 flags;
	__u32 _pad;
};

#endif
