//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
//
// lsan's allocation tracer: uprobes on the target's allocator record every
// live block (address, requested size, stack, thread, time) in the `allocs`
// map. See docs/design.md for how the maps are read.
//
// Pairing rules (why the code looks the way it does):
//  - An allocator call made inside another one (operator new -> malloc,
//    posix_memalign -> malloc, strdup -> malloc, realloc(NULL, n) jumping into
//    malloc) must record one block, once, with the OUTER call's stack. The
//    in-flight call of each thread is remembered with the stack pointer at its
//    entry: an entry whose stack pointer is at or below it is nested (a tail
//    jump keeps the same stack pointer) and is ignored, and only the return
//    whose stack pointer matches the outer entry completes the record.
//  - Stacks are taken at that outer return: there the instruction pointer is
//    the call site and %rbp is the caller's frame, so the frame-pointer walk
//    always contains the function that called the allocator.

#include "headers/lsan_types.h"
#include "headers/bpf_helpers.h"
#include "headers/bpf_tracing.h"
#include "lsan.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// Record 1 in sample_rate allocations (1 = all of them).
volatile const __u32 sample_rate = 1;
// lsan run: stop the process when it calls _exit, so that its memory can
// be checked before it is torn down.
volatile const __u32 stop_at_exit = 0;
// stop_for_rows: a target that maps new code (execve, the dynamic
// linker's debugger hook) stops itself until lsan has loaded its unwind
// rows, so that no allocation is unwound without them (lsan run).
volatile const __u32 stop_for_rows = 0;
// --follow-forks: trace the children of traced processes too.
volatile const __u32 follow_forks = 0;
// Benchmarks only: record blocks without their stacks, to measure what
// stack capture costs on its own.
volatile const __u32 skip_stacks = 0;
// Attach mode: remember the ranges the target frees (the freed map), so
// that the scan leaves them out of the roots. lsan run does not need it:
// its roots are LSan's, which hold no heap memory at all.
volatile const __u32 track_freed = 0;
// glibc's free: the chunk header at p-8 gives the usable size of a block
// freed that lsan did not see allocated (allocated before the attach).
volatile const __u32 glibc_headers = 0;

// The traced processes by tgid (see struct target).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TARGETS);
	__type(key, __u32);
	__type(value, struct target);
} targets SEC(".maps");

// Not preallocated: its kernel memory follows the blocks it holds, so a
// capacity sized for a large target costs a small one only its buckets.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 20); // resized by the loader (--max-blocks)
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct block_key);
	__type(value, struct block);
} allocs SEC(".maps");

// Forks and stops at _exit, for the loader to act on (struct event).
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} events SEC(".maps");

// Stacks to be walked again by the loader (struct late_stack): rare, only
// in the moments between a dlopen or an execve and the loader's reading
// of the new mappings.
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} late_stacks SEC(".maps");

// The ring buffer has no value type, so these put the event types in BTF
// for bpf2go.
const struct event *unused_event __attribute__((unused));
const enum event_type *unused_event_type __attribute__((unused));
const enum op *unused_op __attribute__((unused));
const enum sig_flags *unused_sig_flags __attribute__((unused));
const struct late_stack *unused_late_stack __attribute__((unused));

// Stacks are stored by a 64-bit hash of their frames. Unlike a
// BPF_MAP_TYPE_STACK_TRACE map (bucket = hash % size, a collision loses the
// stack), distinct stacks never evict each other, and the map can be read
// with batch lookups.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 16); // resized by the loader (--max-stacks)
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct stack);
} stacks SEC(".maps");

// In-flight allocator calls by thread. Every return deletes its entry;
// only a thread that dies inside an allocator call leaves one behind, and
// begin_call replaces entries that are stale. Preallocated (it changes on
// every call): 16 Ki threads inside an allocator at once, 1.8 MB. Used
// only where task_calls cannot be (the loader sizes it to one entry
// otherwise).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 14);
	__type(key, __u32); // thread id
	__type(value, struct inflight);
} inflight SEC(".maps");

// The same in the thread's task-local storage, where the kernel lets a
// uprobe program have it (Linux 6.2; task_calls_on set by the loader): a
// pointer from the task instead of a hash lookup and update at each
// call's start and a lookup and delete at its end. A call ends by zeroing
// entry_sp; the entry goes with its thread.
volatile const __u32 task_calls_on = 0;
// When recording began (CLOCK_MONOTONIC ns, set by the loader once every
// probe is in place): a call in flight that began before it may have
// returned before the return probe was there, and is no outer call.
volatile __u64 calls_since = 0;
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct inflight);
} task_calls SEC(".maps");

// Ranges freed since attach, by process and address (track_freed). An
// allocation at an address takes it out again; an LRU map forgets the
// oldest when full, which only makes the scan more conservative.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 18); // resized by the loader
	__type(key, struct block_key);
	__type(value, struct freed);
} freed_ranges SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, enum counter);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sample_counter SEC(".maps");

// Scratch space for one stack: too large for the 512-byte BPF stack.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stack);
} stack_scratch SEC(".maps");

// Scratch space to measure a string the target allocated (string_size).
#define STRING_CHUNK 4096
#define STRING_CHUNKS 16
struct string_chunk {
	char bytes[STRING_CHUNK];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct string_chunk);
} string_scratch SEC(".maps");

static __always_inline void count(enum counter which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);
	if (c)
		*c += 1;
}

static __always_inline __u32 current_tgid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

// this_target filters on the thread group. The kernel's per-process uprobe
// filter already keeps other processes out; this check is the second line
// and counts what slips through (a test asserts the count stays 0).
static __always_inline struct target *this_target(void)
{
	__u32 tgid = current_tgid();
	struct target *t = bpf_map_lookup_elem(&targets, &tgid);
	if (!t)
		count(COUNTER_FOREIGN_HITS);
	return t;
}

// emit tells the loader about a fork or a stop at _exit.
static __always_inline void emit(__u32 type, __u32 tgid, __u32 child)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(COUNTER_EVENTS_DROPPED);
		return;
	}
	e->type = type;
	e->tgid = tgid;
	e->child = child;
	e->_pad = 0;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline __u32 current_tid(void)
{
	return (__u32)bpf_get_current_pid_tgid();
}

// is_stale tells an in-flight call whose return was never seen (the thread
// died in it, or left it with longjmp) from a real outer call: no allocator
// call legitimately takes this long.
static __always_inline int is_stale(struct inflight *call)
{
	return bpf_ktime_get_ns() - call->start_ns > STALE_CALL_NS;
}

// this_call returns this thread's call in flight, NULL or one whose
// entry_sp is 0 when there is none. create: a task-local entry is made
// if the thread has none yet.
static __always_inline struct inflight *this_call(int create)
{
	if (task_calls_on)
		return bpf_task_storage_get(&task_calls, bpf_get_current_task_btf(), 0,
					    create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
	__u32 tid = current_tid();
	return bpf_map_lookup_elem(&inflight, &tid);
}

// begin_call remembers an allocator call made by this thread, unless it is
// nested inside one already in flight (see the header comment).
static __always_inline void begin_call(struct pt_regs *ctx, __u8 op, __u64 size,
				       __u64 arg, __u8 flags)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	// Probes are placed before any instruction that moves the stack
	// pointer (placement.go): this is the one at entry.
	__u64 sp = PT_REGS_SP(ctx);
	struct inflight *outer = this_call(1);

	if (outer && outer->entry_sp && sp <= outer->entry_sp && outer->start_ns >= calls_since && !is_stale(outer)) {
		// Nested call: the outer call owns the block. strdup-like calls
		// don't know their size at entry; the first nested call that
		// does (malloc, not another strdup) says it.
		if (outer->flags & INFLIGHT_SIZE_FROM_NESTED && !(flags & INFLIGHT_SIZE_FROM_NESTED)) {
			outer->size = size;
			outer->flags &= ~INFLIGHT_SIZE_FROM_NESTED;
		}
		return;
	}
	// No call in flight, or a stale one (its return was never seen):
	// this call is the outer one.
	struct inflight call = {
		.entry_sp = sp,
		.size = size,
		.arg = arg,
		.fn = COOKIE_FN(cookie),
		.start_ns = bpf_ktime_get_ns(),
		.op = op,
		.flags = flags,
	};
	if (task_calls_on) {
		if (outer)
			*outer = call;
		else
			count(COUNTER_INFLIGHT_DROPPED);
		return;
	}
	__u32 tid = current_tid();
	if (bpf_map_update_elem(&inflight, &tid, &call, BPF_ANY))
		count(COUNTER_INFLIGHT_DROPPED);
}

// call_done ends this thread's call in flight, call.
static __always_inline void call_done(struct inflight *call)
{
	if (task_calls_on) {
		call->entry_sp = 0;
		return;
	}
	__u32 tid = current_tid();
	bpf_map_delete_elem(&inflight, &tid);
}

// hash_frames mixes the n frames of a stack into a 64-bit key. The slots
// after them are left as they are: the stored length says where it ends.
static __always_inline __u64 hash_frames(struct stack *st, __u32 n)
{
	__u64 h = 0xcbf29ce484222325ULL ^ n;
	for (__u32 i = 0; i < MAX_STACK_DEPTH && i < n; i++) {
		h ^= st->pcs[i];
		h *= 0x100000001b3ULL;
		h ^= h >> 29;
	}
	return h ? h : 1;
}

#include "unwind.h"

// capture_stack stores the user stack of the current call (t is its
// process's target, tgid its id) and returns its id, or 0 when it could not be stored.
// The only place stacks are taken, so the unwinder can change here alone.
// at_exit: the program stopped at an exit of the allocator (see
// exits.go), not after its return; the stack is taken as it will be after
// the return (unwind.h).
// *start says where the walk began and whether it is to be walked again
// (send_late_stack).
static __always_inline __u64 capture_stack(struct pt_regs *ctx, struct target *t, __u32 tgid,
					    int at_exit, struct unwind_start *start)
{
	__u32 zero = 0;
	struct stack *st = bpf_map_lookup_elem(&stack_scratch, &zero);
	if (!st)
		return 0;
	__u64 id = 0, walk = 0;
	long n = unwind_user_stack(ctx, st, t, tgid, at_exit, &id, &walk, start);
	if (id)
		return id; // the stack of a walk remembered, stored already
	if (n <= 0) {
		count(COUNTER_STACK_DROPPED);
		return 0;
	}
	st->len = (__u32)n / sizeof(__u64);
	id = hash_frames(st, st->len);
	if (!bpf_map_lookup_elem(&stacks, &id)) {
		long err = bpf_map_update_elem(&stacks, &id, st, BPF_NOEXIST);
		if (err && err != -17 /* EEXIST: another CPU stored it first */) {
			count(COUNTER_STACK_DROPPED);
			return 0;
		}
	}
	unwind_remember(walk, id);
	return id;
}

// glibc chunk header bits (malloc.c): the low three bits of the size word.
#define GLIBC_IS_MMAPPED 2
#define GLIBC_SIZE_MASK (~7ULL)
// A glibc heap chunk's usable size is its size minus the size word.
#define GLIBC_SIZE_SZ 8
// Larger "chunks" are not heap chunks (a bad header): not remembered.
#define GLIBC_MAX_HEAP_CHUNK (64ULL << 20)

// freed_size returns how many bytes at addr a free releases into the
// allocator's free memory, or 0 when unknown or not worth remembering.
static __always_inline __u64 freed_size(__u64 addr, struct block *b, int header)
{
	if (glibc_headers && header) {
		// The header is intact at free's entry. mmapped chunks go back to
		// the kernel: nothing stale stays behind.
		__u64 word = 0;
		if (bpf_probe_read_user(&word, sizeof(word), (void *)(addr - GLIBC_SIZE_SZ)))
			return 0;
		__u64 size = word & GLIBC_SIZE_MASK;
		if (word & GLIBC_IS_MMAPPED || size < 2 * GLIBC_SIZE_SZ || size > GLIBC_MAX_HEAP_CHUNK)
			return 0;
		return size - GLIBC_SIZE_SZ;
	}
	return b ? b->size : 0;
}

static __always_inline void remember_freed(__u64 addr, __u64 size, struct target *t)
{
	if (!size)
		return;
	struct block_key key = {.addr = addr, .tgid = current_tgid()};
	struct freed f = {.size = size, .time_ns = bpf_ktime_get_ns(), .generation = t->generation};
	if (bpf_map_update_elem(&freed_ranges, &key, &f, BPF_ANY))
		count(COUNTER_FREED_DROPPED);
}

// forget_freed: the allocator handed addr out again.
static __always_inline void forget_freed(__u64 addr)
{
	if (!track_freed || !addr)
		return;
	struct block_key key = {.addr = addr, .tgid = current_tgid()};
	bpf_map_delete_elem(&freed_ranges, &key);
}

// How a block stops being live, for what is remembered as freed.
enum release {
	RELEASE_FREE,        // glibc's free: the chunk header is intact, it says the size
	RELEASE_FREE_OTHER,  // any other free: only a tracked block's size is known
	RELEASE_MOVED,       // realloc moved it: a neighbour may own the header now
	RELEASE_KEPT,        // realloc resized it in place: nothing was freed
};

// forget_block drops a block that stopped being live.
static __always_inline void forget_block(__u64 addr, enum release how, struct target *t)
{
	if (!addr)
		return;
	struct block_key key = {.addr = addr, .tgid = current_tgid()};
	if (track_freed && how != RELEASE_KEPT) {
		struct block *b = bpf_map_lookup_elem(&allocs, &key);
		__u64 size = freed_size(addr, b, how == RELEASE_FREE);
		remember_freed(addr, size, t);
	}
	if (bpf_map_delete_elem(&allocs, &key) == 0)
		count(COUNTER_FREES);
}

// sampled picks 1 in sample_rate allocations with one shared counter, so
// that a run is reproducible: every sample_rate-th allocation is kept.
static __always_inline int sampled(void)
{
	if (sample_rate <= 1)
		return 1;
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&sample_counter, &zero);
	if (!n)
		return 1;
	return __sync_fetch_and_add(n, 1) % sample_rate == 0;
}

// send_late_stack hands the loader a stack the walk could not finish
// with the process's mapping list (unwind_unknown): where it began and the
// stack pages above, copied now (the stack changes as soon as the
// allocator returns). The block keeps the stack the probe got until the
// loader has walked it again; a full ring leaves it so, counted.
static __always_inline void send_late_stack(struct block_key *key, struct block *b,
					    struct unwind_start *start)
{
	struct late_stack *r = bpf_ringbuf_reserve(&late_stacks, sizeof(*r), 0);
	if (!r) {
		unwind_count(UNWIND_COUNTER_LATE_DROPPED);
		return;
	}
	r->tgid = key->tgid;
	r->addr = key->addr;
	r->timestamp_ns = b->timestamp_ns;
	r->stack_id = b->stack_id;
	r->pc = start->pc;
	r->sp = start->sp;
	r->bp = start->bp;
	r->base = start->sp & ~(__u64)(LATE_PAGE - 1);
	r->pages = 0;
	// Page by page: the first page past the stack's top fails alone.
	for (int i = 0; i < LATE_STACK_PAGES; i++) {
		if (bpf_probe_read_user(&r->bytes[i * LATE_PAGE], LATE_PAGE,
					(void *)(r->base + i * LATE_PAGE)))
			break;
		r->pages = i + 1;
	}
	unwind_count(UNWIND_COUNTER_LATE);
	bpf_ringbuf_submit(r, 0);
}

static __always_inline void record_block(struct pt_regs *ctx, __u64 addr,
					 struct inflight *call, struct target *t, int at_exit)
{
	forget_freed(addr);
	if (!sampled())
		return;
	struct block_key key = {.addr = addr, .tgid = current_tgid()};
	struct unwind_start start = {};
	struct block b = {
		.generation = t->generation,
		.size = call->size,
		.timestamp_ns = bpf_ktime_get_ns(),
		.stack_id = skip_stacks ? 0 : capture_stack(ctx, t, key.tgid, at_exit, &start),
		.tid = current_tid(),
		.fn = call->fn,
	};
	long err = bpf_map_update_elem(&allocs, &key, &b, BPF_NOEXIST);
	if (err == -17 /* EEXIST */) {
		// The allocator handed out an address lsan still holds as live:
		// its free went unseen. The old record is replaced; the count
		// says the data was incomplete.
		count(COUNTER_FREES_MISSED);
		err = bpf_map_update_elem(&allocs, &key, &b, BPF_ANY);
	}
	if (err) {
		count(COUNTER_ALLOC_DROPPED);
		return;
	}
	count(COUNTER_ALLOCS);
	if (start.late)
		send_late_stack(&key, &b, &start);
}

// string_size is the size of the string at addr with its NUL: the size of
// a block a strdup-like call allocated when no nested malloc said it
// (mimalloc's mi_strdup inlines its malloc). 0 when unreadable or longer
// than STRING_CHUNKS chunks.
static __always_inline __u64 string_size(__u64 addr)
{
	__u32 zero = 0;
	struct string_chunk *buf = bpf_map_lookup_elem(&string_scratch, &zero);
	if (!buf)
		return 0;
	__u64 total = 0;
	for (int i = 0; i < STRING_CHUNKS; i++) {
		long n = bpf_probe_read_user_str(buf->bytes, sizeof(buf->bytes), (void *)(addr + total));
		if (n <= 0)
			return 0;
		if (n < STRING_CHUNK || buf->bytes[STRING_CHUNK - 1] == 0)
			return total + n;
		// A full chunk without its NUL: the string goes on.
		total += STRING_CHUNK - 1;
	}
	return 0;
}

// finish_call completes the outer call when its end is seen (ret: its
// result), and applies each allocator's rules about what the result means.
static __always_inline void finish_call(struct pt_regs *ctx, struct inflight *call,
					struct target *t, __u64 ret, int at_exit)
{
	switch (call->op) {
	case OP_REALLOC:
		if (ret) {
			// Success: the old block is gone (moved or resized in place).
			forget_block(call->arg, ret == call->arg ? RELEASE_KEPT : RELEASE_MOVED, t);
			record_block(ctx, ret, call, t, at_exit);
		} else if (call->size == 0 || call->flags & INFLIGHT_FREES_ON_FAILURE) {
			// realloc(p, 0) frees p on glibc and returns NULL; reallocf
			// frees p when it fails.
			forget_block(call->arg, RELEASE_MOVED, t);
		}
		// A failed realloc keeps the old block.
		return;
	case OP_RESIZE: {
		// xallocx: the block stays where it is; ret is its new size.
		struct block_key key = {.addr = call->arg, .tgid = current_tgid()};
		struct block *b = bpf_map_lookup_elem(&allocs, &key);
		if (b && ret)
			b->size = ret;
		return;
	}
	case OP_POSIX_MEMALIGN: {
		if ((int)ret != 0)
			return;
		__u64 addr = 0;
		if (bpf_probe_read_user(&addr, sizeof(addr), (void *)call->arg))
			return;
		if (addr)
			record_block(ctx, addr, call, t, at_exit);
		return;
	}
	default:
		if (!ret)
			return;
		if (call->flags & INFLIGHT_SIZE_FROM_NESTED)
			call->size = string_size(ret);
		record_block(ctx, ret, call, t, at_exit);
		return;
	}
}

// clang recognises every plain overflow test and lowers it to a 128-bit
// multiply that BPF cannot call; the empty asm hides the limit from it.
static __always_inline int mul_overflows(__u64 a, __u64 b)
{
	if (!a)
		return 0;
	__u64 limit = ~0ULL / a;
	asm volatile("" : "+r"(limit));
	return b > limit;
}

// libbpf 1.1's headers stop at the fifth argument.
#ifndef PT_REGS_PARM6
#if defined(__TARGET_ARCH_x86)
#define PT_REGS_PARM6(x) ((x)->r9)
#elif defined(__TARGET_ARCH_arm64)
#define PT_REGS_PARM6(x) (((PT_REGS_ARM64 *)(x))->regs[5])
#endif
#endif

// The argument registers, read unconditionally: the verifier refuses a
// context load at an offset chosen at run time.
struct args {
	__u64 r[6];
};

static __always_inline void read_args(struct pt_regs *ctx, struct args *a)
{
	__u64 r0 = PT_REGS_PARM1(ctx), r1 = PT_REGS_PARM2(ctx), r2 = PT_REGS_PARM3(ctx);
	__u64 r3 = PT_REGS_PARM4(ctx), r4 = PT_REGS_PARM5(ctx), r5 = PT_REGS_PARM6(ctx);
	// Each load stays a load at a constant offset from ctx: clang would
	// otherwise step a pointer through the context, which the verifier
	// refuses ("dereference of modified ctx ptr").
	asm volatile("" : "+r"(r0), "+r"(r1), "+r"(r2), "+r"(r3), "+r"(r4), "+r"(r5));
	a->r[0] = r0;
	a->r[1] = r1;
	a->r[2] = r2;
	a->r[3] = r3;
	a->r[4] = r4;
	a->r[5] = r5;
}

// arg_at is argument pos (from 1), 0 for pos 0 (none).
static __always_inline __u64 arg_at(struct args *a, __u32 pos)
{
	switch (pos) {
	case 1: return a->r[0];
	case 2: return a->r[1];
	case 3: return a->r[2];
	case 4: return a->r[3];
	case 5: return a->r[4];
	case 6: return a->r[5];
	}
	return 0;
}

// Every allocating function: malloc, calloc, realloc, the memalign family,
// operator new, the jemalloc, tcmalloc and mimalloc APIs, --alloc-fn.
// The cookie says what the call does and where its arguments are.
SEC("uprobe/alloc")
int alloc_enter(struct pt_regs *ctx)
{
	// The process is checked where the call ends (end_call). A call kept
	// in its own thread's storage concerns no one else; one in the
	// shared hash map would take an entry.
	if (!task_calls_on && !this_target())
		return 0;
	__u64 cookie = bpf_get_attach_cookie(ctx);
	struct args a;
	read_args(ctx, &a);
	__u8 op = COOKIE_OP(cookie), sig = COOKIE_SIG_FLAGS(cookie), flags = 0;
	__u32 size_arg = COOKIE_SIZE_ARG(cookie), count_arg = COOKIE_COUNT_ARG(cookie);
	__u64 size = arg_at(&a, size_arg), ptr = arg_at(&a, COOKIE_PTR_ARG(cookie));
	if (count_arg) {
		// On overflow the call fails (calloc returns NULL, reallocarray
		// keeps the block); it is still tracked so that an allocator call
		// nested in it is not taken for an outer one.
		__u64 n = arg_at(&a, count_arg);
		if (mul_overflows(n, size))
			op = OP_IGNORE;
		size *= n;
	}
	if (!size_arg)
		flags |= INFLIGHT_SIZE_FROM_NESTED; // strdup: the nested malloc knows
	if (sig & SIG_FREES_ON_FAILURE)
		flags |= INFLIGHT_FREES_ON_FAILURE;
	if (sig & SIG_ALLOCATES_IF_PTR_NULL && ptr)
		op = OP_IGNORE; // realpath into the caller's buffer
	begin_call(ctx, op, size, ptr, flags);
	return 0;
}

// end_call completes this thread's outer allocator call if sp is the
// stack pointer its end must have; any other value is the end of a nested
// call. ret is the call's result.
static __always_inline void end_call(struct pt_regs *ctx, __u64 sp, __u64 ret, int at_exit)
{
	// The call ends whatever the process: one begun before it was
	// registered (alloc_enter does not ask) must not stay in flight and
	// make the thread's next call look nested.
	struct inflight *call = this_call(0);
	struct inflight done = {};
	int outer = call && call->entry_sp && sp == call->entry_sp;
	if (outer) {
		done = *call;
		call_done(call);
	}
	struct target *t = this_target();
	if (!t)
		return;
	// Even an end lsan cannot pair (its call began before the attach)
	// hands the block out: its address is no longer freed memory.
	forget_freed(ret);
	if (outer && done.op != OP_IGNORE)
		finish_call(ctx, &done, t, ret, at_exit);
}

// After the return, the stack pointer is RETURN_SP_DELTA above the one at
// entry.
SEC("uretprobe/alloc")
int alloc_return(struct pt_regs *ctx)
{
	end_call(ctx, PT_REGS_SP(ctx) - RETURN_SP_DELTA, PT_REGS_RC(ctx), 0);
	return 0;
}

// An exit site of an allocator (exits.go): a ret, with the result in rax,
// or a tail jump to memset or memcpy, which return their first argument.
// Either way the stack pointer is the entry's.
SEC("uprobe/alloc_exit")
int alloc_exit(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	// Both registers are read unconditionally: the verifier refuses a
	// context load at an offset chosen at run time.
	__u64 rax = PT_REGS_RC(ctx), rdi = PT_REGS_PARM1(ctx);
	asm volatile("" : "+r"(rax), "+r"(rdi));
	__u64 ret = COOKIE_EXIT_KIND(cookie) == EXIT_TAIL_FIRST ? rdi : rax;
	end_call(ctx, PT_REGS_SP(ctx), ret, 1);
	return 0;
}

// free, every operator delete, the allocators' sized and aligned frees,
// --free-fn: the cookie says which argument is the block.
SEC("uprobe/free")
int free_enter(struct pt_regs *ctx)
{
	// Blocks are keyed by process: another process's free finds none of
	// them. The target is needed only to remember what was freed.
	struct target *t = NULL;
	if (track_freed && !(t = this_target()))
		return 0;
	__u64 cookie = bpf_get_attach_cookie(ctx);
	struct args a;
	read_args(ctx, &a);
	enum release how = COOKIE_SIG_FLAGS(cookie) & SIG_HEADER_SIZE ? RELEASE_FREE : RELEASE_FREE_OTHER;
	forget_block(arg_at(&a, COOKIE_PTR_ARG(cookie)), how, t);
	return 0;
}

// mi_heap_destroy: every block of a heap is freed at once, with no call
// per block. The blocks lsan tracked there cannot be told apart from the
// rest, so their frees count as missed: the check says its data is
// incomplete rather than report them as leaks.
SEC("uprobe/bulk_free")
int bulk_free_enter(struct pt_regs *ctx)
{
	if (this_target())
		count(COUNTER_BULK_FREES);
	return 0;
}

// _exit / _Exit (what exit() calls after the atexit handlers): stop the
// whole process with SIGSTOP before it exits, for lsan run's final check.
// The signal is acted on when the probe returns to user space, before the
// exit_group system call.
SEC("uprobe/exit")
int exit_enter(struct pt_regs *ctx)
{
	if (!stop_at_exit || !this_target())
		return 0;
	count(COUNTER_EXIT_STOPS);
	bpf_send_signal(SIGSTOP);
	emit(EVENT_EXIT_STOP, current_tgid(), 0);
	return 0;
}

// maps_new asks lsan for the unwind rows of what the calling process
// mapped. lsan run's processes stop (SIGSTOP, acted on before they return
// to user space) until lsan has loaded them and continues them; an
// attached process is never stopped for it: stacks walked before the rows
// are in are walked again by lsan (send_late_stack).
static __always_inline void maps_new(__u32 tgid)
{
	if (unwind_mode == UNWIND_MODE_FP)
		return;
	if (stop_for_rows)
		bpf_send_signal(SIGSTOP);
	emit(EVENT_MAPS, tgid, stop_for_rows);
}

// The target replaced its program image (execve): what it allocated
// before is gone.
SEC("raw_tracepoint/sched_process_exec")
int on_exec(void *ctx)
{
	__u32 tgid = current_tgid();
	struct target *t = bpf_map_lookup_elem(&targets, &tgid);
	if (!t)
		return 0;
	t->generation++; // only the exec'ing thread is left: no race
	maps_new(tgid);
	return 0;
}

// _dl_debug_state, the dynamic linker's hook for debuggers: called when
// the program's libraries are mapped (before their constructors run) and
// around every dlopen and dlclose.
SEC("uprobe/maps_changed")
int maps_changed(struct pt_regs *ctx)
{
	struct target *t = this_target();
	if (!t)
		return 0;
	// Before the loader is told: a list it reads from now on may lack
	// what the linker just mapped only if it read maps_seq before this.
	// The linker calls the hook under its load lock: no race.
	t->maps_seq++;
	maps_new(current_tgid());
	return 0;
}

extern int bpf_send_signal_task(struct task_struct *task, int sig, enum pid_type type,
				__u64 value) __ksym __weak;

// --follow-forks: a traced process forked. The child is made a target and
// stopped with SIGSTOP before it runs a single instruction (the tracepoint
// fires before the child is first woken), so that the loader can attach
// its probes, which the kernel filters by process, and then continue it:
// none of its allocations is missed. Threads (same tgid) are not children.
SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 tgid = current_tgid();
	__u32 child_tgid = child->tgid;
	if (!follow_forks || child_tgid == tgid || !bpf_map_lookup_elem(&targets, &tgid))
		return 0;
	if (!bpf_send_signal_task)
		return 0; // the loader refuses --follow-forks on such kernels
	struct target born = {.parent = tgid};
	if (bpf_map_update_elem(&targets, &child_tgid, &born, BPF_ANY)) {
		count(COUNTER_EVENTS_DROPPED);
		return 0;
	}
	if (bpf_send_signal_task(child, SIGSTOP, PIDTYPE_TGID, 0)) {
		bpf_map_delete_elem(&targets, &child_tgid);
		count(COUNTER_EVENTS_DROPPED);
		return 0;
	}
	count(COUNTER_FORKS);
	emit(EVENT_FORK, tgid, child_tgid);
	return 0;
}
