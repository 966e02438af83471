/*
 * allocshim.so (built as examples/bin/allocshim.so by `make tools`): an
 * LD_PRELOAD allocation counter, the independent reference for the
 * "outstanding" expectations (check-outstanding.sh uses it).
 *
 * It wraps every allocator entry point lsan probes (malloc, calloc, realloc,
 * reallocarray, free, posix_memalign, aligned_alloc, memalign, valloc,
 * pvalloc, strdup, strndup, C++ operator new/new[]/delete/delete[] in all
 * variants) and forwards to the next definition (glibc, jemalloc, ...).
 * Tracking starts when the program writes "ready\n" on stdout and stops when
 * it writes "done\n" (the examples' protocol, see common.h): at "done" it
 * writes one line per live tracked block to $ALLOCSHIM_OUT (default stderr):
 *
 *   block SIZE MODULE OFFSET ADDRESS
 *
 * MODULE is the object holding the allocation call site ("" for the main
 * executable) and OFFSET the call site's return address relative to that
 * object's load bias, for addr2line; ADDRESS is the block's. A last line
 * "table START END" gives the shim's own table (which holds every block's
 * address: skip it when scanning the process's memory). The report is
 * written without allocating. Only the outermost allocator call counts
 * (strdup calling malloc, operator new calling malloc, reallocarray calling
 * realloc, ...): its caller is the allocating function.
 *
 * Requested sizes are recorded, as lsan does: realloc(p, n) and
 * reallocarray(p, m, n) replace p by a new block of the new size;
 * realloc(p, 0) returning NULL frees p (glibc); a failed realloc keeps p.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
#define CALLER ((uintptr_t)__builtin_return_address(0))

/* ---- the table of live tracked blocks (open addressing, no malloc) ---- */

#define SLOTS (1u << 20)
#define EMPTY 0
#define TOMB 1

struct rec {
	uintptr_t ptr;
	size_t size;
	uintptr_t caller;
};

static struct rec table[SLOTS];
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile int tracking;
static unsigned long overflowed;
static __thread int depth;

static size_t slot_of(uintptr_t p)
{
	return (size_t)((p >> 4) * 0x9E3779B97F4A7C15ull >> 44) & (SLOTS - 1);
}

static void track(void *p, size_t size, uintptr_t caller)
{
	size_t i, n;

	if (p == NULL || !tracking)
		return;
	pthread_mutex_lock(&table_mu);
	for (i = slot_of((uintptr_t)p), n = 0; n < SLOTS; i = (i + 1) & (SLOTS - 1), n++) {
		if (table[i].ptr == EMPTY || table[i].ptr == TOMB || table[i].ptr == (uintptr_t)p) {
			table[i].ptr = (uintptr_t)p;
			table[i].size = size;
			table[i].caller = caller;
			break;
		}
	}
	if (n == SLOTS)
		overflowed++;
	pthread_mutex_unlock(&table_mu);
}

static void untrack(void *p)
{
	size_t i, n;

	if (p == NULL)
		return;
	pthread_mutex_lock(&table_mu);
	for (i = slot_of((uintptr_t)p), n = 0; n < SLOTS; i = (i + 1) & (SLOTS - 1), n++) {
		if (table[i].ptr == EMPTY)
			break;
		if (table[i].ptr == (uintptr_t)p) {
			table[i].ptr = TOMB;
			break;
		}
	}
	pthread_mutex_unlock(&table_mu);
}

/* ---- the report ---- */

struct find {
	uintptr_t addr;
	const char *name;
	uintptr_t bias;
	int found;
};

static int find_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct find *f = arg;
	int i;

	(void)size;
	for (i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && f->addr >= lo && f->addr < lo + ph->p_memsz) {
			f->name = info->dlpi_name;
			f->bias = info->dlpi_addr;
			f->found = 1;
			return 1;
		}
	}
	return 0;
}

static void put(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = syscall(SYS_write, fd, s, n);
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* Writes the report without allocating (no stdio streams): allocating here
 * would change the allocator's state that a memory scan after "done" sees. */
static void dump(void)
{
	const char *path = getenv("ALLOCSHIM_OUT");
	char line[PATH_MAX + 128];
	int fd = 2, n;
	size_t i;

	if (path != NULL && *path != '\0')
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	pthread_mutex_lock(&table_mu);
	for (i = 0; i < SLOTS; i++) {
		struct find f = {table[i].caller, "", 0, 0};
		if (table[i].ptr == EMPTY || table[i].ptr == TOMB)
			continue;
		dl_iterate_phdr(find_object, &f);
		n = snprintf(line, sizeof(line), "block %zu %s 0x%lx 0x%lx\n", table[i].size,
			     f.found && f.name[0] ? f.name : "\"\"",
			     (unsigned long)(table[i].caller - f.bias),
			     (unsigned long)table[i].ptr);
		if (n > 0)
			put(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	}
	if (overflowed) {
		n = snprintf(line, sizeof(line), "overflow %lu\n", overflowed);
		put(fd, line, (size_t)n);
	}
	/* the table itself holds every block's address: a memory scan must skip it */
	n = snprintf(line, sizeof(line), "table 0x%lx 0x%lx\n", (unsigned long)table,
		     (unsigned long)table + sizeof(table));
	put(fd, line, (size_t)n);
	pthread_mutex_unlock(&table_mu);
	if (fd != 2)
		close(fd);
}

/* ---- resolving the next definitions ---- */

static char boot_arena[1 << 16];
static size_t boot_used;
static int resolving;

static int in_boot(void *p)
{
	return (char *)p >= boot_arena && (char *)p < boot_arena + sizeof(boot_arena);
}

/* dlsym may allocate before malloc itself is resolved: serve it from a
 * static arena (never freed). */
static void *boot_alloc(size_t n)
{
	void *p;

	n = (n + 15) & ~(size_t)15;
	if (boot_used + n > sizeof(boot_arena))
		return NULL;
	p = boot_arena + boot_used;
	boot_used += n;
	return p;
}

static void *next(const char *name)
{
	void *f;

	resolving++;
	f = dlsym(RTLD_NEXT, name);
	resolving--;
	return f;
}

#define REAL(ret, name, params)                                             \
	static ret(*real_##name) params;                                    \
	static ret(*get_##name(void)) params                                \
	{                                                                   \
		if (real_##name == NULL)                                    \
			real_##name = (ret(*) params)next(#name);           \
		return real_##name;                                         \
	}

REAL(void *, malloc, (size_t))
REAL(void *, calloc, (size_t, size_t))
REAL(void *, realloc, (void *, size_t))
REAL(void *, reallocarray, (void *, size_t, size_t))
REAL(void, free, (void *))
REAL(int, posix_memalign, (void **, size_t, size_t))
REAL(void *, aligned_alloc, (size_t, size_t))
REAL(void *, memalign, (size_t, size_t))
REAL(void *, valloc, (size_t))
REAL(void *, pvalloc, (size_t))
REAL(char *, strdup, (const char *))
REAL(char *, strndup, (const char *, size_t))
REAL(ssize_t, write, (int, const void *, size_t))

/* ---- the C allocator ---- */

EXPORT void *malloc(size_t n)
{
	void *p;

	if (real_malloc == NULL && resolving)
		return boot_alloc(n);
	depth++;
	p = get_malloc()(n);
	if (--depth == 0)
		track(p, n, CALLER);
	return p;
}

EXPORT void *calloc(size_t m, size_t n)
{
	void *p;

	if (real_calloc == NULL && resolving)
		return boot_alloc(m * n); /* zeroed: static storage */
	depth++;
	p = get_calloc()(m, n);
	if (--depth == 0)
		track(p, m * n, CALLER);
	return p;
}

EXPORT void free(void *p)
{
	if (p == NULL || in_boot(p))
		return;
	depth++;
	get_free()(p);
	if (--depth == 0)
		untrack(p);
}

static void realloc_result(void *old, void *p, size_t n, int overflow, uintptr_t caller)
{
	if (p != NULL) {
		untrack(old);
		track(p, n, caller);
	} else if (n == 0 && !overflow && old != NULL) {
		untrack(old); /* glibc: realloc(p, 0) frees p, returns NULL */
	}
}

EXPORT void *realloc(void *old, size_t n)
{
	void *p;

	if (in_boot(old)) {
		p = malloc(n);
		if (p != NULL)
			memcpy(p, old, n);
		return p;
	}
	depth++;
	p = get_realloc()(old, n);
	if (--depth == 0)
		realloc_result(old, p, n, 0, CALLER);
	return p;
}

EXPORT void *reallocarray(void *old, size_t m, size_t n)
{
	size_t total;
	int overflow = __builtin_mul_overflow(m, n, &total);
	void *p;

	depth++;
	p = get_reallocarray()(old, m, n);
	if (--depth == 0)
		realloc_result(old, p, total, overflow, CALLER);
	return p;
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
	int r;

	depth++;
	r = get_posix_memalign()(out, align, n);
	if (--depth == 0 && r == 0)
		track(*out, n, CALLER);
	return r;
}

#define WRAP_ALIGNED(name)                                                  \
	EXPORT void *name(size_t align, size_t n)                           \
	{                                                                   \
		void *p;                                                    \
		depth++;                                                    \
		p = get_##name()(align, n);                                 \
		if (--depth == 0)                                           \
			track(p, n, CALLER);                                \
		return p;                                                   \
	}

WRAP_ALIGNED(aligned_alloc)
WRAP_ALIGNED(memalign)

EXPORT void *valloc(size_t n)
{
	void *p;

	depth++;
	p = get_valloc()(n);
	if (--depth == 0)
		track(p, n, CALLER);
	return p;
}

EXPORT void *pvalloc(size_t n)
{
	void *p;

	depth++;
	p = get_pvalloc()(n);
	if (--depth == 0)
		track(p, n, CALLER);
	return p;
}

EXPORT char *strdup(const char *s)
{
	char *p;

	depth++;
	p = get_strdup()(s);
	if (--depth == 0 && p != NULL)
		track(p, strlen(p) + 1, CALLER);
	return p;
}

EXPORT char *strndup(const char *s, size_t n)
{
	char *p;

	depth++;
	p = get_strndup()(s, n);
	if (--depth == 0 && p != NULL)
		track(p, strlen(p) + 1, CALLER);
	return p;
}

/* ---- C++ operators (Itanium mangled names, x86-64: size_t is m) ---- */

#define WRAP_NEW(sym, params, args, size)                                   \
	REAL(void *, sym, params)                                           \
	EXPORT void *sym params                                             \
	{                                                                   \
		void *p;                                                    \
		depth++;                                                    \
		p = get_##sym() args;                                       \
		if (--depth == 0)                                           \
			track(p, size, CALLER);                             \
		return p;                                                   \
	}

#define WRAP_DELETE(sym, params, args)                                      \
	REAL(void, sym, params)                                             \
	EXPORT void sym params                                              \
	{                                                                   \
		depth++;                                                    \
		get_##sym() args;                                           \
		if (--depth == 0)                                           \
			untrack(p);                                         \
	}

typedef size_t align_t;     /* std::align_val_t */
typedef const void *nothrow_t_ref; /* const std::nothrow_t & */

WRAP_NEW(_Znwm, (size_t n), (n), n)                                   /* new */
WRAP_NEW(_Znam, (size_t n), (n), n)                                   /* new[] */
WRAP_NEW(_ZnwmRKSt9nothrow_t, (size_t n, nothrow_t_ref t), (n, t), n)
WRAP_NEW(_ZnamRKSt9nothrow_t, (size_t n, nothrow_t_ref t), (n, t), n)
WRAP_NEW(_ZnwmSt11align_val_t, (size_t n, align_t a), (n, a), n)
WRAP_NEW(_ZnamSt11align_val_t, (size_t n, align_t a), (n, a), n)
WRAP_NEW(_ZnwmSt11align_val_tRKSt9nothrow_t, (size_t n, align_t a, nothrow_t_ref t), (n, a, t), n)
WRAP_NEW(_ZnamSt11align_val_tRKSt9nothrow_t, (size_t n, align_t a, nothrow_t_ref t), (n, a, t), n)

WRAP_DELETE(_ZdlPv, (void *p), (p))                                   /* delete */
WRAP_DELETE(_ZdaPv, (void *p), (p))                                   /* delete[] */
WRAP_DELETE(_ZdlPvm, (void *p, size_t n), (p, n))
WRAP_DELETE(_ZdaPvm, (void *p, size_t n), (p, n))
WRAP_DELETE(_ZdlPvRKSt9nothrow_t, (void *p, nothrow_t_ref t), (p, t))
WRAP_DELETE(_ZdaPvRKSt9nothrow_t, (void *p, nothrow_t_ref t), (p, t))
WRAP_DELETE(_ZdlPvSt11align_val_t, (void *p, align_t a), (p, a))
WRAP_DELETE(_ZdaPvSt11align_val_t, (void *p, align_t a), (p, a))
WRAP_DELETE(_ZdlPvmSt11align_val_t, (void *p, size_t n, align_t a), (p, n, a))
WRAP_DELETE(_ZdaPvmSt11align_val_t, (void *p, size_t n, align_t a), (p, n, a))
WRAP_DELETE(_ZdlPvSt11align_val_tRKSt9nothrow_t, (void *p, align_t a, nothrow_t_ref t), (p, a, t))
WRAP_DELETE(_ZdaPvSt11align_val_tRKSt9nothrow_t, (void *p, align_t a, nothrow_t_ref t), (p, a, t))

/* ---- the protocol: "ready\n" starts tracking, "done\n" reports ---- */

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	ssize_t r = get_write()(fd, buf, n);

	if (fd == 1 && n == 6 && memcmp(buf, "ready\n", 6) == 0)
		tracking = 1;
	else if (fd == 1 && n == 5 && memcmp(buf, "done\n", 5) == 0 && tracking) {
		tracking = 0;
		dump();
	}
	return r;
}
