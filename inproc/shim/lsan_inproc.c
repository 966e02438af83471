// lsan's in-process recorder: preloaded into the programs `lsan run`
// starts (--tracer inproc). It interposes the allocator's entry points,
// calls the real ones, and writes each block's birth and death, with the
// allocation stack, into memory shared with lsan (layout.h), which keeps
// the live set and runs the usual checks. No kernel trap per call: an
// allocation's record costs an atomic add (its generation) and a stack walk
// (often a replay of one) in a ring the thread owns; a free of the block
// its thread allocated last, before lsan read that record, takes the
// record back with one compare-and-swap and writes nothing.
//
// Rules the code keeps:
//   - it never allocates through the allocator it wraps (dlsym's own needs
//     are served from a static buffer during setup);
//   - every record path is safe in a signal handler that interrupts it in
//     the same thread: a record begun while the thread holds a slot goes
//     to a shared ring, whose slots are reserved with an atomic add; slots
//     are published by their seq word; stacks are interned with CAS;
//   - a free takes its address's generation before the block is released,
//     an allocation after it is obtained, so lsan can order events of
//     different threads on the same address (GEN_SLOTS);
//   - if lsan stops draining (it died), recording stops instead of the
//     program waiting forever, and a counter says so.
// Without a BPF tracer (header.lifecycle) it also tells lsan of the
// process's exit and new code, and waits for its answer there.
// docs/design.md has the whole picture.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "layout.h"

#define EXPORT __attribute__((visibility("default")))
#define TLS __thread __attribute__((tls_model("initial-exec")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

// The function table: rec.fn indexes it; lsan maps names to its own table.
enum fn {
	FN_MALLOC, FN_FREE, FN_CALLOC, FN_REALLOC, FN_REALLOCARRAY, FN_POSIX_MEMALIGN,
	FN_ALIGNED_ALLOC, FN_MEMALIGN, FN_VALLOC, FN_PVALLOC,
	FN_NEW, FN_NEW_ARRAY, FN_NEW_NOTHROW, FN_NEW_ARRAY_NOTHROW,
	FN_NEW_ALIGNED, FN_NEW_ARRAY_ALIGNED, FN_NEW_ALIGNED_NOTHROW, FN_NEW_ARRAY_ALIGNED_NOTHROW,
	FN_DELETE, FN_DELETE_ARRAY, FN_DELETE_SIZED, FN_DELETE_ARRAY_SIZED,
	FN_DELETE_ALIGNED, FN_DELETE_ARRAY_ALIGNED, FN_DELETE_SIZED_ALIGNED, FN_DELETE_ARRAY_SIZED_ALIGNED,
	FN_DELETE_NOTHROW, FN_DELETE_ARRAY_NOTHROW, FN_DELETE_ALIGNED_NOTHROW, FN_DELETE_ARRAY_ALIGNED_NOTHROW,
	FN_CFREE, FN_STRDUP, FN_STRNDUP,
	FN_COUNT
};

// Exported so that lsan reads the names from the library itself.
EXPORT const char lsan_inproc_fn_names[] =
	"malloc\0free\0calloc\0realloc\0reallocarray\0posix_memalign\0"
	"aligned_alloc\0memalign\0valloc\0pvalloc\0"
	"_Znwm\0_Znam\0_ZnwmRKSt9nothrow_t\0_ZnamRKSt9nothrow_t\0"
	"_ZnwmSt11align_val_t\0_ZnamSt11align_val_t\0_ZnwmSt11align_val_tRKSt9nothrow_t\0_ZnamSt11align_val_tRKSt9nothrow_t\0"
	"_ZdlPv\0_ZdaPv\0_ZdlPvm\0_ZdaPvm\0"
	"_ZdlPvSt11align_val_t\0_ZdaPvSt11align_val_t\0_ZdlPvmSt11align_val_t\0_ZdaPvmSt11align_val_t\0"
	"_ZdlPvRKSt9nothrow_t\0_ZdaPvRKSt9nothrow_t\0_ZdlPvSt11align_val_tRKSt9nothrow_t\0_ZdaPvSt11align_val_tRKSt9nothrow_t\0"
	"cfree\0strdup\0strndup\0";

// ---- the real functions ----

static TLS uint32_t t_tid;
static TLS uint64_t t_stack_hi; // the top of this thread's stack, for safe reads
static TLS int t_busy;           // inside the shim's own setup: calls pass through
static TLS uint32_t t_holding;   // slots this thread reserved and has not published
static TLS uint32_t t_ring1;     // the ring this thread writes to, + 1 (0: not chosen yet)
// The thread's last record, when it is an allocation in its own ring: the
// one a free can take back (retract). The block's address is kept
// inverted: the check scans this memory too (TLS is a root), and must not
// find the block referenced from here.
static TLS struct ring *t_last_ring;
static TLS uint64_t t_last_pos, t_last_addr_inv;
static TLS uint8_t t_last_fn;
// The slot of the thread's last record, when that record is one it
// retracted: its next allocation writes there again (reuse_slot).
static TLS struct ring *t_free_ring;
static TLS uint64_t t_free_pos;
static TLS uint32_t t_free_word; // the slot's kind word as retract left it

static void *(*real_malloc)(size_t);
static void (*real_free)(void *);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_valloc)(size_t);
static void *(*real_pvalloc)(size_t);
static void *real_fn[FN_COUNT]; // the C++ operators, by fn (dlsym's answers)

// While dlsym runs (it may calloc), allocations come from here and are
// never released: a few hundred bytes, once.
static char bootstrap[16384] __attribute__((aligned(16)));
static size_t bootstrap_used;
static int resolving;

static void *bootstrap_alloc(size_t n)
{
	size_t at = __atomic_fetch_add(&bootstrap_used, (n + 15) & ~(size_t)15, __ATOMIC_RELAXED);
	if (at + n > sizeof(bootstrap))
		return NULL;
	return bootstrap + at;
}

static int in_bootstrap(void *p)
{
	return (char *)p >= bootstrap && (char *)p < bootstrap + sizeof(bootstrap);
}

static void *next(const char *name) { return dlsym(RTLD_NEXT, name); }

static void map_shared(void);
static void exit_check(void);
static void request_rows(void);
static void put(uint8_t kind, uint8_t fn, uint64_t addr, uint64_t size, uint32_t gen, uint64_t *frame);
static uint64_t now_ns(void);
static void make_keys(void);

static void resolve(void)
{
	if (__atomic_load_n(&real_free, __ATOMIC_ACQUIRE))
		return;
	resolving = 1;
	real_malloc = next("malloc");
	real_calloc = next("calloc");
	real_realloc = next("realloc");
	real_posix_memalign = next("posix_memalign");
	real_aligned_alloc = next("aligned_alloc");
	real_memalign = next("memalign");
	real_valloc = next("valloc");
	real_pvalloc = next("pvalloc");
	resolving = 0;
	make_keys();
	__atomic_store_n(&real_free, (void (*)(void *))next("free"), __ATOMIC_RELEASE);
	map_shared();
}

// real_cxx finds the real C++ operator fn, which may come with a library
// loaded later (dlopen of C++ code from a C program).
static void *real_cxx(int fn)
{
	void *f = __atomic_load_n(&real_fn[fn], __ATOMIC_ACQUIRE);
	if (likely(f))
		return f;
	const char *name = lsan_inproc_fn_names;
	for (int i = 0; i < fn; i++)
		name += strlen(name) + 1;
	t_busy++; // dlsym's own allocations are not the program's
	f = next(name);
	t_busy--;
	__atomic_store_n(&real_fn[fn], f, __ATOMIC_RELEASE);
	return f;
}

// ---- shared memory ----

static struct header *shared;
static uint64_t room[RINGS]; // per ring: positions below this have room (see put)
static int self_pid; // refreshed in a forked child (after_fork_in_child)
static struct proc_maps *my_maps;

// now_ns is CLOCK_MONOTONIC, lsan's heartbeat clock: read only where a
// thread waits (for room in its ring, or for lsan's answer).
static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

// next_gen takes addr's next generation. The atomic add orders it: taken
// before a free releases the block and after an allocation obtained it,
// a free's number is below that of the allocation that gets the block
// next, whichever threads and rings they go through. (A clock would need
// a serializing read, rdtscp: twice the cost of this.)
static inline uint32_t next_gen(uint64_t addr)
{
	uint32_t *gens = (uint32_t *)((char *)shared + GENS_OFF);
	uint64_t slot = ((addr >> 4) * 0x9e3779b97f4a7c15ULL) >> (64 - 16);
	return __atomic_fetch_add(&gens[slot & (GEN_SLOTS - 1)], 1, __ATOMIC_SEQ_CST);
}

static uint32_t my_image; // this program image's number (header.images)

static void count(int which, uint64_t n)
{
	__atomic_fetch_add(&shared->counters[which], n, __ATOMIC_RELAXED);
}

static int exit_checked; // this process asked for its exit check

static void after_fork_in_child(void)
{
	exit_checked = 0;
	self_pid = syscall(SYS_getpid);
	my_maps = NULL;
	t_tid = 0;
	t_ring1 = 0; // the parent's thread owns that ring: the child claims its own
	t_last_ring = NULL;
	t_free_ring = NULL;
}

// map_shared maps the memory lsan made, at the first allocator call:
// recording starts with the first block the process gets, before any
// constructor. LSAN_INPROC_SHM is "FD:PATH": the descriptor the command
// inherited it on (kept open, so that a program it execs inherits it too),
// or, where a program closed that, lsan's own descriptor under /proc.
static void map_shared(void)
{
	const char *spec = getenv("LSAN_INPROC_SHM");
	if (!spec || !*spec)
		return;
	int fd = -1;
	const char *colon = strchr(spec, ':');
	struct stat st;
	if (colon) {
		int inherited = atoi(spec);
		if (inherited > 2 && fstat(inherited, &st) == 0 && (uint64_t)st.st_size == SHARED_SIZE)
			fd = fcntl(inherited, F_DUPFD_CLOEXEC, inherited);
		if (fd < 0)
			fd = open(colon + 1, O_RDWR | O_CLOEXEC);
	}
	if (fd < 0)
		return;
	void *p = mmap(NULL, SHARED_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return;
	struct header *h = p;
	if (h->magic != LSAN_INPROC_MAGIC || h->version != LSAN_INPROC_VERSION) {
		munmap(p, SHARED_SIZE);
		return;
	}
	self_pid = syscall(SYS_getpid);
	my_image = __atomic_fetch_add(&h->images, 1, __ATOMIC_SEQ_CST) + 1;
	pthread_atfork(NULL, NULL, after_fork_in_child);
	__atomic_store_n(&shared, h, __ATOMIC_RELEASE);
	put(REC_START, 0, 0, 0, 0, NULL);
	if (h->lifecycle) {
		// Registered first, it runs last of the atexit handlers, as
		// LSan's check does.
		atexit(exit_check);
		request_rows(); // this image's code, before its first stack
	}
}

// Every program image with the library sets up here at the latest (before
// its own constructors), so that one that never allocates still has its
// exit checked.
__attribute__((constructor)) static void lsan_inproc_init(void) { resolve(); }

// pid is this process's id, refreshed after a fork (after_fork_in_child:
// the child inherits the mapping and writes its own records).
static uint32_t pid_now(void) { return self_pid; }

static uint32_t tid_now(void)
{
	if (unlikely(!t_tid))
		t_tid = syscall(SYS_gettid);
	return t_tid;
}

// ---- stacks ----

extern void *__libc_stack_end __attribute__((weak));

// stack_top finds, once per thread, the end of the stack it runs on, so
// that the walk never reads outside it. pthread_getattr_np allocates (its
// CPU set): those calls, and a signal handler's meanwhile, are recorded
// like any other, their walks bounded by the frame of this call, which
// lies below everything they read.
static TLS uint64_t t_finding_top; // set while pthread_getattr_np runs

static uint64_t stack_top(uint32_t pid, uint32_t tid)
{
	if (likely(t_stack_hi))
		return t_stack_hi;
	if (t_finding_top)
		return t_finding_top;
	if (tid == pid && &__libc_stack_end && __libc_stack_end) {
		t_stack_hi = ((uint64_t)__libc_stack_end + 4095) & ~4095ULL;
		return t_stack_hi;
	}
	pthread_attr_t attr;
	void *addr;
	size_t size;
	t_finding_top = (uint64_t)__builtin_frame_address(0);
	uint64_t hi = 0;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		if (pthread_attr_getstack(&attr, &addr, &size) == 0)
			hi = (uint64_t)addr + size;
		pthread_attr_destroy(&attr);
	}
	t_finding_top = 0;
	t_stack_hi = hi;
	return hi;
}

static struct proc_maps *maps_of(uint32_t pid)
{
	static uint32_t missed_pid, missed_gen;
	if (likely(my_maps && my_maps->pid == pid))
		return my_maps;
	uint32_t gen = __atomic_load_n(&shared->procs_gen, __ATOMIC_ACQUIRE);
	if (missed_pid == pid && missed_gen == gen)
		return NULL;
	struct proc_maps *all = (struct proc_maps *)((char *)shared + shared->procs_off);
	for (int i = 0; i < PROC_SLOTS; i++) {
		if (__atomic_load_n(&all[i].pid, __ATOMIC_ACQUIRE) == pid) {
			my_maps = &all[i];
			return my_maps;
		}
	}
	missed_pid = pid;
	missed_gen = gen;
	return NULL;
}

static const struct unwind_mapping *find_mapping(const struct proc_maps *pm, uint64_t pc)
{
	uint32_t lo = 0, n = pm->n < MAX_MAPPINGS ? pm->n : MAX_MAPPINGS;
	while (n > 0) {
		uint32_t half = n / 2;
		if (pm->m[lo + half].start <= pc) {
			lo += half + 1;
			n -= half + 1;
		} else {
			n = half;
		}
	}
	if (lo == 0)
		return NULL;
	const struct unwind_mapping *m = &pm->m[lo - 1];
	return pc < m->end ? m : NULL;
}

static struct unwind_row find_row(const struct unwind_mapping *m, uint64_t vaddr)
{
	struct unwind_row none = {0};
	const struct unwind_row *rows = (const struct unwind_row *)((char *)shared + shared->rows_off);
	if (vaddr > 0xffffffffULL || m->first_row + (uint64_t)m->nrows > shared->max_rows)
		return none;
	uint32_t lo = m->first_row, n = m->nrows;
	while (n > 0) {
		uint32_t half = n / 2;
		if (rows[lo + half].pc <= (uint32_t)vaddr) {
			lo += half + 1;
			n -= half + 1;
		} else {
			n = half;
		}
	}
	return lo == m->first_row ? none : rows[lo - 1];
}

enum { KIND_NONE, KIND_RSP, KIND_RBP, KIND_PLT, KIND_EXPRESSION, KIND_SIGNAL, KIND_END };

// The walk's cut markers: bpf/unwind.h's, so reports name them alike.
#define MARK_NO_TABLE 0xffffffffffff0010ULL
#define MARK_EXPRESSION 0xffffffffffff0020ULL
#define MARK_READ 0xffffffffffff0030ULL
#define MARK_DEPTH 0xffffffffffff0040ULL
#define MARK_BAD_FRAME 0xffffffffffff0050ULL

struct frame {
	uint64_t pc, sp, bp, lo, hi;
	// bp_at is where bp was read (0: logged already). In code without
	// frame pointers rbp holds data that differs from call to call; a
	// walk depends on it only where a frame's CFA or the frame-pointer
	// chain uses it, so only then is it logged (use_bp).
	uint64_t bp_at;
};

static int readable(const struct frame *f, uint64_t addr)
{
	return addr >= f->lo && addr + 8 <= f->hi && !(addr & 7);
}

// ---- per-thread caches ----
//
// The row of each return address, and whole walks: the same call sites
// allocate again and again. They live in memory mapped on a thread's first
// walk and unmapped at its exit, not in TLS: static TLS comes out of every
// thread's stack, and a thread asked for with a small stack (16 KiB) could
// not be created. Only the outer record of a thread writes them (t_depth
// 1): a signal handler's would tear an entry the interrupted one is
// writing, so each entry's key is cleared while it is written.

// The row cache: a lookup is two binary searches otherwise.
#define ROW_CACHE 1024
struct row_cache_entry {
	uint64_t pc; // 0 while being written
	uint32_t seq; // the mapping list's sequence count it was found with
	struct unwind_row row;
};

// The walk cache. A walk is a function of the interposed function's frame
// address, of the words it reads on the stack (return addresses, saved
// rbp values: their addresses follow from the words read before) and of
// the rows (the mapping list's sequence count). So a walk that starts at
// the same frame and reads the same words at the same addresses gives the
// same stack: replaying its reads, independent loads, costs a fraction of
// walking (row lookups, a branch per frame) and hashing and interning the
// result. Walks through a signal frame (whose registers come from the
// frame, not from the rows) or longer than WALK_READS reads are not kept.
#define WALK_CACHE 512
#define WALK_WAYS 8 // see walk_set
#define WALK_READS 24
struct walk_log {
	uint32_t n; // reads made; more than WALK_READS: not kept
	uint32_t uncacheable;
	uint64_t addr[WALK_READS], val[WALK_READS];
};
struct walk_entry {
	uint64_t frame; // 0 while being written
	uint32_t pid, seq;
	uint32_t have_rows; // the walk had the process's mapping list
	uint32_t stack;     // the interned stack (slot + 1)
	struct walk_log log;
};

struct thread_cache {
	struct row_cache_entry rows[ROW_CACHE];
	struct walk_entry walks[WALK_CACHE]; // WALK_WAYS ways a set
	uint8_t victim[WALK_CACHE / WALK_WAYS]; // per set: the way to replace next
};
static TLS struct thread_cache *t_cache;
static pthread_key_t cache_key; // its destructor unmaps a thread's cache
static int have_cache_key;

static void drop_cache(void *c)
{
	if (c == t_cache)
		t_cache = NULL;
	munmap(c, sizeof(struct thread_cache));
}

// A thread's ring goes back at its exit (ring_key's destructor); one whose
// thread is gone without that (killed, or records made after its
// destructors ran) is taken over by the next thread looking for one.
static pthread_key_t ring_key;
static int have_ring_key;

static void drop_ring(void *v)
{
	struct header *h = shared;
	uint32_t ri = (uint32_t)(uintptr_t)v - 1;
	if (h && ri < OWNED_RINGS) {
		struct ring *r = (struct ring *)((char *)h + h->rings_off) + ri;
		uint64_t me = (uint64_t)self_pid << 32 | t_tid;
		__atomic_compare_exchange_n(&r->owner, &me, 0, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
	}
	if (t_ring1 == ri + 1) {
		t_ring1 = 0;
		t_last_ring = NULL;
		t_free_ring = NULL;
	}
}

static void make_keys(void)
{
	have_cache_key = pthread_key_create(&cache_key, drop_cache) == 0;
	have_ring_key = pthread_key_create(&ring_key, drop_ring) == 0;
}

static TLS int t_depth; // records in progress on this thread (2: a signal handler's, nested)

// thread_cache returns this thread's caches, mapped on first use (by the
// outer record only); NULL when there are none.
static struct thread_cache *thread_cache(void)
{
	if (likely(t_cache != NULL))
		return t_cache;
	if (t_depth != 1 || !have_cache_key)
		return NULL;
	void *m = mmap(NULL, sizeof(struct thread_cache), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	if (pthread_setspecific(cache_key, m) != 0) {
		munmap(m, sizeof(struct thread_cache));
		return NULL;
	}
	t_cache = m;
	return m;
}

static struct unwind_row lookup_row(struct thread_cache *tc, const struct proc_maps *pm, uint32_t seq, uint64_t pc)
{
	struct row_cache_entry *e = tc ? &tc->rows[(pc ^ (pc >> 8)) & (ROW_CACHE - 1)] : NULL;
	if (e && e->pc == pc && e->seq == seq)
		return e->row;
	const struct unwind_mapping *m = find_mapping(pm, pc);
	struct unwind_row row = {0};
	if (m)
		row = find_row(m, pc - m->bias);
	if (e && t_depth == 1) {
		// pc goes last.
		e->pc = 0;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		e->seq = seq;
		e->row = row;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		e->pc = pc;
	}
	return row;
}

// log_word notes that the walk used the word val at addr.
static inline void log_word(struct walk_log *lg, uint64_t addr, uint64_t val)
{
	if (lg->n < WALK_READS) {
		lg->addr[lg->n] = addr;
		lg->val[lg->n] = val;
	}
	lg->n++;
}

// logged_read reads a stack word the walk depends on, and logs it.
static inline uint64_t logged_read(struct walk_log *lg, uint64_t addr)
{
	uint64_t v = *(uint64_t *)addr;
	log_word(lg, addr, v);
	return v;
}

static inline void use_bp(struct frame *f, struct walk_log *lg)
{
	if (f->bp_at) {
		log_word(lg, f->bp_at, f->bp);
		f->bp_at = 0;
	}
}

// step unwinds one frame: 1 when f now holds the caller, 0 at the
// outermost frame, or a cut marker.
static uint64_t step(struct frame *f, struct thread_cache *tc, const struct proc_maps *pm, uint32_t seq, int mode,
		     struct walk_log *lg)
{
	uint64_t pc = f->pc - 1; // every frame here is a return address
	struct unwind_row row = {0};
	if (pm)
		row = lookup_row(tc, pm, seq, pc);
	uint64_t cfa;
	switch (row.kind) {
	case KIND_RSP:
		cfa = f->sp + row.cfa_offset;
		break;
	case KIND_RBP:
		use_bp(f, lg);
		cfa = f->bp + row.cfa_offset;
		if (cfa <= f->sp)
			return MARK_BAD_FRAME;
		break;
	case KIND_PLT:
		cfa = f->sp + 8 + (((f->pc & 15) >= 11) ? 8 : 0);
		break;
	case KIND_END:
		return 0;
	case KIND_EXPRESSION:
		return MARK_EXPRESSION;
	case KIND_SIGNAL: {
		// The kernel's signal frame (struct rt_sigframe) at sp: the
		// interrupted registers in its ucontext.
		uint64_t uc = f->sp + 40;
		if (!readable(f, uc + 80) || !readable(f, uc + 128))
			return MARK_READ;
		lg->uncacheable = 1;
		f->bp = *(uint64_t *)(uc + 80);
		f->bp_at = 0;
		f->sp = *(uint64_t *)(uc + 120);
		f->pc = *(uint64_t *)(uc + 128) + 1; // not a return address
		return 1;
	}
	default:
		if (mode == 2 && pm)
			return MARK_NO_TABLE;
		// Frame pointers.
		use_bp(f, lg);
		if (f->bp == 0)
			return 0;
		if (f->bp < f->sp || !readable(f, f->bp) || !readable(f, f->bp + 8))
			return MARK_BAD_FRAME;
		// The chain tests the saved rbp: it is used, so logged.
		uint64_t saved_bp = logged_read(lg, f->bp), ra = logged_read(lg, f->bp + 8);
		if (saved_bp && saved_bp <= f->bp)
			return MARK_BAD_FRAME;
		if (pm && !find_mapping(pm, ra - 1))
			return MARK_BAD_FRAME;
		f->sp = f->bp + 16;
		f->bp = saved_bp;
		f->bp_at = 0;
		f->pc = ra;
		return ra ? 1 : 0;
	}
	if (!readable(f, cfa - 8))
		return MARK_READ;
	uint64_t ra = logged_read(lg, cfa - 8);
	if (row.rbp_offset8) {
		uint64_t at = cfa + (int64_t)row.rbp_offset8 * 8;
		if (!readable(f, at))
			return MARK_READ;
		f->bp = *(uint64_t *)at;
		f->bp_at = at;
	}
	f->sp = cfa;
	f->pc = ra;
	return ra ? 1 : 0;
}

// walk fills pcs with the return addresses from the interposed
// function's caller outward. frame is the interposed function's own frame
// pointer (the shim keeps frame pointers): its saved rbp and return
// address start the walk. lg logs the stack words it read.
static uint32_t walk(uint64_t *pcs, uint64_t *frame, uint64_t hi, struct thread_cache *tc, const struct proc_maps *pm,
		     uint32_t seq, int mode, struct walk_log *lg)
{
	struct frame f = {.sp = (uint64_t)(frame + 2), .hi = hi};
	f.bp = frame[0];
	f.bp_at = (uint64_t)frame;
	f.pc = logged_read(lg, (uint64_t)(frame + 1));
	f.lo = f.sp;
	uint32_t n = 0;
	while (f.pc) {
		if (n == MAX_DEPTH) {
			pcs[n - 1] = MARK_DEPTH;
			break;
		}
		pcs[n++] = f.pc;
		uint64_t r = step(&f, tc, mode == 0 ? NULL : pm, seq, mode, lg);
		if (r == 0)
			break;
		if (r != 1) {
			if (n == MAX_DEPTH)
				n--;
			pcs[n++] = r;
			break;
		}
	}
	return n;
}

static uint32_t intern(const uint64_t *pcs, uint32_t n, uint32_t pid);

// walk_set is the set of frame's walks. Several ways, as one function
// called from two callers at the same depth (the same frame and return
// address, another chain above) would evict itself in one; eight, as a
// program's hot walks crowd some sets: with two ways, 160k of sqlite3's
// 846k walks in the bench missed (300k in another run: the sets follow
// the addresses), with eight 700, and git's 43k misses fell to 13k.
static uint32_t walk_set(uint64_t *frame)
{
	uint64_t k = (uint64_t)frame ^ frame[1];
	return (uint32_t)(k ^ (k >> 12) ^ (k >> 24)) & (WALK_CACHE / WALK_WAYS - 1);
}

// replays tells whether e's walk reads the same words now.
static int replays(const struct walk_entry *e, uint64_t *frame, uint32_t pid, uint32_t seq, int have_rows)
{
	if (e->frame != (uint64_t)frame || e->pid != pid || e->seq != seq || e->have_rows != (uint32_t)have_rows)
		return 0;
	uint64_t diff = 0;
	for (uint32_t i = 0; i < e->log.n; i++)
		diff |= *(const uint64_t *)e->log.addr[i] ^ e->log.val[i];
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	// Still the same entry: a nested record may have begun rewriting it.
	return diff == 0 && e->frame == (uint64_t)frame;
}

static void keep_walk(struct walk_entry *e, uint64_t *frame, uint32_t pid, uint32_t seq, int have_rows,
		      uint32_t stack, const struct walk_log *lg)
{
	e->frame = 0;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	e->pid = pid;
	e->seq = seq;
	e->have_rows = have_rows;
	e->stack = stack;
	e->log.n = lg->n;
	memcpy(e->log.addr, lg->addr, lg->n * 8);
	memcpy(e->log.val, lg->val, lg->n * 8);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	e->frame = (uint64_t)frame;
}

// stack_of returns the interned allocation stack of the interposed
// function whose frame is frame (0: none, the table is full).
static uint32_t stack_of(uint64_t *frame, uint32_t pid, uint32_t tid)
{
	uint64_t hi = stack_top(pid, tid);
	if (!hi)
		hi = (uint64_t)frame + (1 << 20);
	int mode = shared->unwind_mode;
	struct proc_maps *pm = mode ? maps_of(pid) : NULL;
	uint32_t seq = pm ? __atomic_load_n(&pm->seq, __ATOMIC_ACQUIRE) : 0;
	if (seq & 1)
		pm = NULL; // lsan is rewriting it: frame pointers this once
	struct thread_cache *tc = thread_cache();
	uint32_t set = walk_set(frame);
	if (tc) {
		for (int way = 0; way < WALK_WAYS; way++) {
			struct walk_entry *e = &tc->walks[WALK_WAYS * set + way];
			if (replays(e, frame, pid, seq, pm != NULL)) {
				// The next to go is not the one just used.
				if (t_depth == 1 && tc->victim[set] == way)
					tc->victim[set] = (way + 1) % WALK_WAYS;
				return e->stack;
			}
		}
	}
	uint64_t pcs[MAX_DEPTH];
	struct walk_log lg;
	lg.n = 0;
	lg.uncacheable = 0;
	uint32_t n = walk(pcs, frame, hi, tc, pm, seq, mode, &lg);
	if (pm && __atomic_load_n(&pm->seq, __ATOMIC_ACQUIRE) != seq) {
		// The rows changed under the walk: keep what was read before
		// the first frame that may have used them.
		n = n > 1 ? 1 : n;
		lg.uncacheable = 1;
	}
	uint32_t stack = n ? intern(pcs, n, pid) : 0;
	if (tc && stack && t_depth == 1 && !lg.uncacheable && lg.n <= WALK_READS) {
		int way = tc->victim[set];
		keep_walk(&tc->walks[WALK_WAYS * set + way], frame, pid, seq, pm != NULL, stack, &lg);
		tc->victim[set] = (way + 1) % WALK_WAYS;
	}
	return stack;
}

static uint64_t hash_stack(const uint64_t *pcs, uint32_t n, uint32_t pid)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ pid ^ ((uint64_t)n << 32);
	for (uint32_t i = 0; i < n; i++) {
		h ^= pcs[i];
		h *= 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	return h | (1ULL << 63);
}

// intern stores a stack once and returns its slot + 1 (0: table full).
static uint32_t intern(const uint64_t *pcs, uint32_t n, uint32_t pid)
{
	struct stack_entry *tab = (struct stack_entry *)((char *)shared + shared->stacks_off);
	uint64_t h = hash_stack(pcs, n, pid);
	for (uint32_t probe = 0; probe < 64; probe++) {
		uint32_t i = (uint32_t)(h + probe) & (STACK_SLOTS - 1);
		struct stack_entry *e = &tab[i];
		uint64_t st = __atomic_load_n(&e->state, __ATOMIC_ACQUIRE);
		if (st == h && e->pid == pid && e->depth == n && memcmp(e->pcs, pcs, n * 8) == 0)
			return i + 1;
		if (st != 0)
			continue; // another stack, or one being written (never waited for: a
				  // signal handler may have interrupted its writer)
		uint64_t empty = 0;
		if (!__atomic_compare_exchange_n(&e->state, &empty, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			continue;
		e->pid = pid;
		e->depth = n;
		memcpy(e->pcs, pcs, n * 8);
		__atomic_store_n(&e->state, h, __ATOMIC_RELEASE);
		return i + 1;
	}
	count(C_STACKS_FULL, 1);
	return 0;
}

// ---- records ----

// lsan refreshes the heartbeat as it drains; a thread that finds its ring
// full for longer than header.dead_after (2 s) after the last beat takes
// lsan for dead.

// owner_gone tells whether the thread that claimed a ring has exited.
static int owner_gone(uint64_t owner)
{
	int saved = errno;
	int gone = syscall(SYS_tgkill, (pid_t)(owner >> 32), (pid_t)(uint32_t)owner, 0) != 0 && errno == ESRCH;
	errno = saved;
	return gone;
}

// abandoned tells whether a ring whose owner is gone can be taken over:
// not when that thread died holding a slot (killed in the middle of a
// record), which lsan's drain of the ring waits for.
static int abandoned(struct ring *r, uint64_t owner)
{
	uint64_t reserved = __atomic_load_n(&r->reserve, __ATOMIC_ACQUIRE);
	if (reserved) {
		struct rec *last = &r->slots[(reserved - 1) & (RING_SLOTS - 1)];
		if (__atomic_load_n(&last->seq, __ATOMIC_ACQUIRE) != (uint32_t)reserved ||
		    __atomic_load_n(&last->kind, __ATOMIC_ACQUIRE) == REC_WRITING)
			return 0;
	}
	return owner_gone(owner);
}

// choose_ring finds this thread a ring of its own, or a shared one when
// every owned ring has a live thread. Outer records only (t_holding 1).
static uint32_t choose_ring(struct ring *rs, uint32_t pid, uint32_t tid)
{
	uint64_t me = (uint64_t)pid << 32 | tid;
	for (uint32_t i = 0; i < OWNED_RINGS; i++) {
		uint32_t ri = (tid + i) % OWNED_RINGS;
		uint64_t o = __atomic_load_n(&rs[ri].owner, __ATOMIC_ACQUIRE);
		// The same pid and tid: an earlier program image of this
		// thread (execve), or a thread gone whose tid came back.
		if (o == me || ((o == 0 || abandoned(&rs[ri], o)) &&
				__atomic_compare_exchange_n(&rs[ri].owner, &o, me, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))) {
			t_ring1 = ri + 1; // before the key: pthread_setspecific may allocate
			if (have_ring_key)
				pthread_setspecific(ring_key, (void *)(uintptr_t)(ri + 1));
			return ri;
		}
	}
	return OWNED_RINGS + tid % (RINGS - OWNED_RINGS);
}

typedef uint32_t __attribute__((may_alias)) word32;

// reuse_slot takes back for an allocation the slot of the record this
// thread retracted last, if it is still the last of ring r and lsan has
// not claimed it: a loop of temporary blocks then writes one slot, in its
// CPU's cache, where the ring's next slot would be a new cache line, and
// one lsan reads again from the other CPU.
static inline int reuse_slot(struct ring *r, uint64_t *pos)
{
	if (t_free_ring != r)
		return 0;
	t_free_ring = NULL;
	if (__atomic_load_n(&r->reserve, __ATOMIC_RELAXED) != t_free_pos + 1)
		return 0;
	word32 *w = (word32 *)&r->slots[t_free_pos & (RING_SLOTS - 1)].kind;
	uint32_t want = t_free_word;
	if (!__atomic_compare_exchange_n(w, &want, REC_WRITING, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return 0;
	// Its only writer: a plain add. lsan counts the pair it never reads.
	__atomic_store_n(&r->reused, __atomic_load_n(&r->reused, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
	*pos = t_free_pos;
	return 1;
}

static void put(uint8_t kind, uint8_t fn, uint64_t addr, uint64_t size, uint32_t gen, uint64_t *frame)
{
	struct header *h = shared;
	if (!h || h->disabled)
		return;
	uint32_t pid = pid_now(), tid = tid_now();
	struct ring *rs = (struct ring *)((char *)h + h->rings_off);
	// A record made while this thread holds an unpublished slot (a signal
	// handler's, or one inside the walk's pthread_getattr_np) goes to a
	// shared ring: in its own, room could wait for lsan, which waits for
	// the slot this thread holds, and the plain add that reserves a slot
	// there may be the one interrupted.
	uint32_t held = t_holding++;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	uint32_t ri;
	if (likely(held == 0)) {
		if (unlikely(!t_ring1))
			t_ring1 = choose_ring(rs, pid, tid) + 1;
		ri = t_ring1 - 1;
	} else {
		ri = OWNED_RINGS + (tid + held) % (RINGS - OWNED_RINGS);
	}
	struct ring *r = rs + ri;
	uint64_t pos;
	int reused = kind == REC_ALLOC && held == 0 && reuse_slot(r, &pos);
	if (reused) {
		// The slot is reserved and has room already.
	} else if (likely(ri < OWNED_RINGS)) {
		// Its only writer. Release: once lsan sees the slot reserved it
		// sees the retraction (retract) of the record before it.
		pos = __atomic_load_n(&r->reserve, __ATOMIC_RELAXED);
		__atomic_store_n(&r->reserve, pos + 1, __ATOMIC_RELEASE);
	} else {
		pos = __atomic_fetch_add(&r->reserve, 1, __ATOMIC_SEQ_CST);
	}
	// lsan's consumed count is read only when the room last seen is used
	// up: read on every record, its cache line would go back and forth
	// between the two CPUs. (A room once seen stays valid: consumed only
	// grows.)
	if (!reused && unlikely(pos >= __atomic_load_n(&room[ri], __ATOMIC_RELAXED))) {
		uint64_t consumed = __atomic_load_n(&r->consumed, __ATOMIC_ACQUIRE);
		if (pos - consumed >= RING_SLOTS) {
			count(C_WAITS, 1);
			while (pos - (consumed = __atomic_load_n(&r->consumed, __ATOMIC_ACQUIRE)) >= RING_SLOTS) {
				uint64_t beat = __atomic_load_n(&h->heartbeat, __ATOMIC_ACQUIRE);
				if ((int64_t)(now_ns() - beat) > (int64_t)h->dead_after) {
					__atomic_store_n(&h->disabled, 1, __ATOMIC_RELEASE);
					count(C_LOST, 1);
					t_holding--;
					return;
				}
				sched_yield();
			}
		}
		uint64_t limit = consumed + RING_SLOTS;
		if (limit > __atomic_load_n(&room[ri], __ATOMIC_RELAXED))
			__atomic_store_n(&room[ri], limit, __ATOMIC_RELAXED);
	}
	uint32_t stack = 0;
	if (kind == REC_ALLOC) {
		// After the slot: a free read before this record must find it
		// reserved before the drain pass that drops the free's tombstone
		// (inproc/recorder.go, drainAtLeast).
		gen = next_gen(addr);
		if (frame) {
			t_depth++;
			stack = stack_of(frame, pid, tid);
			t_depth--;
		}
	}
	struct rec *s = &r->slots[pos & (RING_SLOTS - 1)];
	if (!reused) {
		s->kind = kind;
		s->fn = fn;
		s->claimed = 0;
	}
	s->pid = pid;
	s->tid = tid;
	s->stack = stack;
	s->addr = addr;
	s->size = size;
	s->gen = gen;
	s->image = my_image;
	s->time = (uint32_t)__atomic_load_n(&h->epoch_ms, __ATOMIC_RELAXED);
	if (reused) // published by its kind: seq was published before
		__atomic_store_n((word32 *)&s->kind, REC_ALLOC | (uint32_t)fn << 8, __ATOMIC_RELEASE);
	else
		__atomic_store_n(&s->seq, (uint32_t)(pos + 1), __ATOMIC_RELEASE);
	if (kind == REC_ALLOC && held == 0 && ri < OWNED_RINGS) {
		t_last_ring = r;
		t_last_pos = pos;
		t_last_addr_inv = ~addr;
		t_last_fn = fn;
	}
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	t_holding--;
}

// retract takes back the allocation record of p, the block this thread
// allocated last, if lsan has not read it and nothing came after it in
// the ring: the free then writes nothing and takes no generation (other
// threads' events on the address are ordered by the generations they
// take, and this pair, inside one thread, lies between them).
static inline int retract(void *p)
{
	// A free of another block (most) leaves here. A match read here is
	// read again below: a signal handler may change t_last_* meanwhile.
	if (t_last_addr_inv != ~(uint64_t)p || !t_last_ring || t_holding)
		return 0;
	// From here a signal handler's records go to a shared ring and leave
	// t_last_* alone: read before, they could be the handler's own.
	t_holding++;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	struct ring *r = t_last_ring;
	int done = 0;
	if (r && t_last_addr_inv == ~(uint64_t)p) {
		t_last_ring = NULL;
		uint64_t pos = t_last_pos;
		if (__atomic_load_n(&r->reserve, __ATOMIC_RELAXED) == pos + 1) {
			word32 *w = (word32 *)&r->slots[pos & (RING_SLOTS - 1)].kind;
			uint32_t want = REC_ALLOC | (uint32_t)t_last_fn << 8;
			uint32_t retracted = REC_RETRACTED | (uint32_t)t_last_fn << 8;
			done = __atomic_compare_exchange_n(w, &want, retracted, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
			if (done) {
				t_free_ring = r;
				t_free_pos = pos;
				t_free_word = retracted;
			}
		}
	}
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	t_holding--;
	return done;
}

#define FRAME() ((uint64_t *)__builtin_frame_address(0))
#define RECORDING() likely(shared && !t_busy)

static inline void record_alloc(int fn, void *p, size_t size, uint64_t *frame)
{
	if (p && RECORDING())
		put(REC_ALLOC, fn, (uint64_t)p, size, 0, frame);
}

// A free's record carries the generation taken before the release (stamp).
static inline void record_free(int fn, void *p, uint32_t gen)
{
	if (p && RECORDING())
		put(REC_FREE, fn, (uint64_t)p, 0, gen, NULL);
}

static inline uint32_t stamp(void *p) { return p && RECORDING() ? next_gen((uint64_t)p) : 0; }

// ---- the process's lifecycle (header.lifecycle) ----

#include <linux/futex.h>

static int lsan_alive(const struct header *h)
{
	uint64_t beat = __atomic_load_n(&h->heartbeat, __ATOMIC_ACQUIRE);
	return (int64_t)(now_ns() - beat) <= (int64_t)h->dead_after;
}

// answer_after writes an urgent record and waits until lsan bumps *done,
// or looks gone.
static void answer_after(uint8_t kind, uint32_t *done)
{
	struct header *h = shared;
	uint32_t before = __atomic_load_n(done, __ATOMIC_ACQUIRE);
	put(kind, 0, 0, 0, 0, NULL);
	__atomic_fetch_add(&h->urgent, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(done, __ATOMIC_ACQUIRE) == before && lsan_alive(h)) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		syscall(SYS_futex, done, FUTEX_WAIT, before, &ts, NULL, 0);
	}
}

// exit_check has lsan check the process before it exits: from the last
// atexit handler, or from _exit called directly.
static void exit_check(void)
{
	struct header *h = shared;
	if (!h || !h->lifecycle || h->disabled || exit_checked || !lsan_alive(h))
		return;
	exit_checked = 1;
	answer_after(REC_EXIT, &h->exit_done);
}

// request_rows has lsan load the unwind rows of code just mapped.
static void request_rows(void)
{
	struct header *h = shared;
	if (!h || !h->lifecycle || h->disabled || !lsan_alive(h))
		return;
	answer_after(REC_MAPS, &h->maps_done);
}

// leave ends the process through libc's own _exit (where lsan's BPF
// tracer, when it follows the process, has its probe).
static __attribute__((noreturn)) void leave(const char *name, int status)
{
	exit_check();
	void (*real)(int) = (void (*)(int))dlsym(RTLD_NEXT, name);
	if (real)
		real(status);
	for (;;)
		syscall(SYS_exit_group, status);
}

EXPORT __attribute__((noreturn)) void _exit(int status) { leave("_exit", status); }

EXPORT __attribute__((noreturn)) void _Exit(int status) { leave("_Exit", status); }

EXPORT void *dlopen(const char *file, int mode)
{
	static void *(*real_dlopen)(const char *, int);
	if (!real_dlopen) {
		t_busy++;
		real_dlopen = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
		t_busy--;
	}
	void *handle = real_dlopen(file, mode);
	if (handle)
		request_rows();
	return handle;
}

// ---- the C allocator ----

#define NOINLINE __attribute__((noinline))

EXPORT NOINLINE void *malloc(size_t n)
{
	if (unlikely(!real_malloc)) {
		if (resolving)
			return bootstrap_alloc(n);
		resolve();
	}
	void *p = real_malloc(n);
	record_alloc(FN_MALLOC, p, n, FRAME());
	return p;
}

// release is free's work, recorded as fn's.
static inline void release(int fn, void *p)
{
	if (unlikely(!p || in_bootstrap(p)))
		return;
	if (unlikely(!real_free))
		resolve();
	if (RECORDING() && retract(p)) {
		real_free(p);
		return;
	}
	uint32_t t = stamp(p);
	record_free(fn, p, t);
	real_free(p);
}

EXPORT NOINLINE void free(void *p) { release(FN_FREE, p); }

// strdup and strndup allocate here, not in libc's own malloc call, so
// that the caller is the allocation's first frame (as under LSan).
EXPORT NOINLINE char *strdup(const char *str)
{
	if (unlikely(!real_malloc))
		resolve();
	size_t n = strlen(str) + 1;
	char *p = real_malloc(n);
	if (p)
		memcpy(p, str, n);
	record_alloc(FN_STRDUP, p, n, FRAME());
	return p;
}

EXPORT NOINLINE char *strndup(const char *str, size_t max)
{
	if (unlikely(!real_malloc))
		resolve();
	size_t n = strnlen(str, max);
	char *p = real_malloc(n + 1);
	if (p) {
		memcpy(p, str, n);
		p[n] = 0;
	}
	record_alloc(FN_STRNDUP, p, n + 1, FRAME());
	return p;
}

// glibc's old name of free, kept for binaries linked long ago.
EXPORT NOINLINE void cfree(void *p) { release(FN_CFREE, p); }

EXPORT NOINLINE void *calloc(size_t n, size_t size)
{
	if (unlikely(!real_calloc)) {
		if (resolving) {
			if (size && n > (size_t)-1 / size)
				return NULL;
			return bootstrap_alloc(n * size); // static memory: zeroed
		}
		resolve();
	}
	void *p = real_calloc(n, size);
	record_alloc(FN_CALLOC, p, n * size, FRAME());
	return p;
}

// realloc's old block is released inside the call: its record carries the
// time before the call and is written only if the call succeeded.
static void *do_realloc(int fn, void *old, size_t size, void *p, uint32_t t, uint64_t *frame)
{
	if (p && old) {
		record_free(fn, old, t);
	} else if (!p && old && size == 0) {
		record_free(fn, old, t); // realloc(p, 0) freed p (glibc)
	}
	record_alloc(fn, p, size, frame);
	return p;
}

EXPORT NOINLINE void *realloc(void *old, size_t size)
{
	if (unlikely(in_bootstrap(old))) {
		void *p = malloc(size);
		size_t room = bootstrap + sizeof(bootstrap) - (char *)old;
		if (p)
			memcpy(p, old, size < room ? size : room);
		return p;
	}
	if (unlikely(!real_realloc))
		resolve();
	uint32_t t = stamp(old);
	void *p = real_realloc(old, size);
	return do_realloc(FN_REALLOC, old, size, p, t, FRAME());
}

// reallocarray is realloc of n * size, as glibc's is. Calling glibc's
// would record the block twice, the second time through the interposed
// realloc it calls, and a retracted record that would have cleared the
// first can be written over (reuse_slot).
EXPORT NOINLINE void *reallocarray(void *old, size_t n, size_t size)
{
	size_t bytes;
	if (__builtin_mul_overflow(n, size, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	if (unlikely(!real_realloc))
		resolve();
	uint32_t t = stamp(old);
	void *p = real_realloc(old, bytes);
	return do_realloc(FN_REALLOCARRAY, old, bytes, p, t, FRAME());
}

EXPORT NOINLINE int posix_memalign(void **out, size_t align, size_t size)
{
	if (unlikely(!real_posix_memalign))
		resolve();
	int err = real_posix_memalign(out, align, size);
	if (err == 0)
		record_alloc(FN_POSIX_MEMALIGN, *out, size, FRAME());
	return err;
}

#define ALIGNED(name, FN)                                                  \
	EXPORT NOINLINE void *name(size_t align, size_t size)              \
	{                                                                  \
		if (unlikely(!real_##name))                                \
			resolve();                                         \
		void *p = real_##name(align, size);                        \
		record_alloc(FN, p, size, FRAME());                        \
		return p;                                                  \
	}
ALIGNED(aligned_alloc, FN_ALIGNED_ALLOC)
ALIGNED(memalign, FN_MEMALIGN)

#define PAGE_ALIGNED(name, FN)                                             \
	EXPORT NOINLINE void *name(size_t size)                            \
	{                                                                  \
		if (unlikely(!real_##name))                                \
			resolve();                                         \
		void *p = real_##name(size);                               \
		record_alloc(FN, p, size, FRAME());                        \
		return p;                                                  \
	}
PAGE_ALIGNED(valloc, FN_VALLOC)
PAGE_ALIGNED(pvalloc, FN_PVALLOC)

// ---- C++ ----

// operator new takes its block from the real malloc (memalign for the
// aligned forms) itself, as libstdc++'s does, and calls the real operator
// only when that fails (the new_handler loop, bad_alloc): a nested call
// whose malloc passed through unrecorded would let a signal handler's
// allocation pass unrecorded too.
#define NEW(sym, FN, PARAMS, ARGS, OBTAIN)                                    \
	EXPORT NOINLINE void *sym PARAMS                                      \
	{                                                                     \
		if (unlikely(!real_malloc))                                   \
			resolve();                                            \
		void *p = OBTAIN;                                             \
		if (unlikely(!p)) {                                           \
			void *(*real) PARAMS = (void *(*)PARAMS)real_cxx(FN); \
			t_busy++;                                             \
			p = real ARGS;                                        \
			t_busy--;                                             \
		}                                                             \
		record_alloc(FN, p, size, FRAME());                           \
		return p;                                                     \
	}
// operator delete is free, as in libstdc++.
#define DELETE(sym, FN, PARAMS)                                               \
	EXPORT NOINLINE void sym PARAMS { release(FN, p); }

typedef struct nothrow_t nothrow_t;
typedef size_t align_val_t;

#define SZ (size_t size)
#define SZ_N (size_t size, const nothrow_t *n)
#define SZ_A (size_t size, align_val_t a)
#define SZ_A_N (size_t size, align_val_t a, const nothrow_t *n)
#define PLAIN real_malloc(size ? size : 1)
#define ALIGNED_BY_A real_memalign(a, size ? size : 1)
NEW(_Znwm, FN_NEW, SZ, (size), PLAIN)
NEW(_Znam, FN_NEW_ARRAY, SZ, (size), PLAIN)
NEW(_ZnwmRKSt9nothrow_t, FN_NEW_NOTHROW, SZ_N, (size, n), PLAIN)
NEW(_ZnamRKSt9nothrow_t, FN_NEW_ARRAY_NOTHROW, SZ_N, (size, n), PLAIN)
NEW(_ZnwmSt11align_val_t, FN_NEW_ALIGNED, SZ_A, (size, a), ALIGNED_BY_A)
NEW(_ZnamSt11align_val_t, FN_NEW_ARRAY_ALIGNED, SZ_A, (size, a), ALIGNED_BY_A)
NEW(_ZnwmSt11align_val_tRKSt9nothrow_t, FN_NEW_ALIGNED_NOTHROW, SZ_A_N, (size, a, n), ALIGNED_BY_A)
NEW(_ZnamSt11align_val_tRKSt9nothrow_t, FN_NEW_ARRAY_ALIGNED_NOTHROW, SZ_A_N, (size, a, n), ALIGNED_BY_A)

#define P (void *p)
#define P_S (void *p, size_t s)
#define P_A (void *p, align_val_t a)
#define P_S_A (void *p, size_t s, align_val_t a)
#define P_N (void *p, const nothrow_t *n)
#define P_A_N (void *p, align_val_t a, const nothrow_t *n)
DELETE(_ZdlPv, FN_DELETE, P)
DELETE(_ZdaPv, FN_DELETE_ARRAY, P)
DELETE(_ZdlPvm, FN_DELETE_SIZED, P_S)
DELETE(_ZdaPvm, FN_DELETE_ARRAY_SIZED, P_S)
DELETE(_ZdlPvSt11align_val_t, FN_DELETE_ALIGNED, P_A)
DELETE(_ZdaPvSt11align_val_t, FN_DELETE_ARRAY_ALIGNED, P_A)
DELETE(_ZdlPvmSt11align_val_t, FN_DELETE_SIZED_ALIGNED, P_S_A)
DELETE(_ZdaPvmSt11align_val_t, FN_DELETE_ARRAY_SIZED_ALIGNED, P_S_A)
DELETE(_ZdlPvRKSt9nothrow_t, FN_DELETE_NOTHROW, P_N)
DELETE(_ZdaPvRKSt9nothrow_t, FN_DELETE_ARRAY_NOTHROW, P_N)
DELETE(_ZdlPvSt11align_val_tRKSt9nothrow_t, FN_DELETE_ALIGNED_NOTHROW, P_A_N)
DELETE(_ZdaPvSt11align_val_tRKSt9nothrow_t, FN_DELETE_ARRAY_ALIGNED_NOTHROW, P_A_N)
