/*
 * common.h: the protocol every example follows (see README.md).
 *
 *   example_begin()  writes "ready\n" on stdout, then waits for one line on
 *                    stdin (EOF also continues). A test attaches lsan after
 *                    "ready" and then sends the line: every allocation the
 *                    example makes after example_begin() returns is tracked.
 *   example_end()    scrubs the dead part of the stack, writes "done\n" and,
 *                    when LSAN_EXAMPLE_DAEMON is set in the environment, sleeps
 *                    until killed (pause() in a loop) so a live check can run;
 *                    otherwise it returns and main returns 0.
 *
 * Both use raw read(2)/write(2), never stdio: stdio would allocate its
 * buffers with malloc on first use, and such a block could land after the
 * attach and show up in the expectations.
 *
 * Keeping leaks visible: a stale copy of a leaked pointer in a live stack
 * slot or register is a root, and hides the leak (for LSan and for lsan
 * alike). So the examples allocate in noinline functions, keep no pointers in
 * main's own frame, and example_end() (and threads before they exit or park)
 * call example_scrub_stack(), which overwrites the stack below the caller
 * where the dead frames of the allocating functions (and of malloc itself)
 * were.
 *
 * Every function here has C linkage, also when included from C++: function
 * names in the expectations are plain identifiers for every symbolizer.
 */
#ifndef LSAN_EXAMPLES_COMMON_H
#define LSAN_EXAMPLES_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EX_NOINLINE __attribute__((noinline))
#define EX_UNUSED __attribute__((unused))

#ifdef __cplusplus
extern "C" {
#endif

#ifdef EXAMPLE_LSAN_BUILD
/*
 * Only in the `make lsan` builds (clang -fsanitize=leak), so the binaries in
 * bin/lsan/ behave the same when run by hand:
 *  - allocator_may_return_null=1: calloc overflow, a huge realloc and a
 *    posix_memalign with a bad alignment return NULL/EINVAL like glibc instead
 *    of aborting the program;
 *  - fast_unwind_on_malloc=0: LSan's frame-pointer unwinder loses the caller
 *    of strdup/strndup (glibc's strdup has no frame pointer), the DWARF
 *    unwinder does not.
 * LSAN_OPTIONS in the environment overrides these.
 */
const char *__lsan_default_options(void);
const char *__lsan_default_options(void)
{
	return "allocator_may_return_null=1:fast_unwind_on_malloc=0";
}
#endif

/* Write all of s on fd, retrying on EINTR and short writes. */
static EX_UNUSED void example_write(int fd, const char *s)
{
	size_t len = strlen(s);
	while (len > 0) {
		ssize_t n = write(fd, s, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			_exit(111);
		}
		s += n;
		len -= (size_t)n;
	}
}

/* Print a message on stderr and exit 1: an example whose environment does
 * not behave as documented (e.g. calloc overflow not returning NULL) must not
 * silently produce different allocations. */
static EX_UNUSED void example_fail(const char *what)
{
	example_write(2, "example: unexpected: ");
	example_write(2, what);
	example_write(2, "\n");
	_exit(1);
}

/*
 * Forget stale pointers: overwrite the stack below the caller's frame with
 * zeros (the dead frames of functions that returned, allocating helpers and
 * malloc internals, may still hold copies of pointers; 64 KiB is far more
 * than any example's call depth uses), then zero the caller-saved registers.
 *
 * On x86-64 the zeroing is one `rep stosb` below the stack pointer, in
 * assembly: a C array in this function's frame leaves whatever padding the
 * compiler puts between it and the other locals unwritten. gcc -O0 left
 * such an 8-byte hole at the top of the frame, exactly where a dead malloc
 * frame had left the last block's address; example_write()'s `n` occupies
 * the slot next and is uninitialised until write(2) returns, so a live
 * check that stopped the thread inside write() saw that block as reachable.
 *
 * The registers matter for a live check: malloc can return with a copy of
 * the block's address in, e.g., r9, and write(), getenv() and pause() do not
 * touch r9, so without this the main thread sleeping in pause() keeps the
 * last block it allocated "reachable" (seen with valgrind's live leak check).
 * The callee-saved registers are restored on return and hold the caller's
 * values (the examples keep no pointers in them).
 */
#define EXAMPLE_SCRUB_BYTES (64 * 1024)

static EX_NOINLINE EX_UNUSED void example_scrub_stack(void)
{
#if defined(__x86_64__)
	/* Move the stack pointer down first, so every byte written lies above
	 * it (no reliance on how far below %rsp the kernel grows the stack). */
	__asm__ volatile(
		"sub %[n], %%rsp\n\t"
		"mov %%rsp, %%rdi\n\t"
		"mov %[n], %%rcx\n\t"
		"xor %%eax, %%eax\n\t"
		"cld\n\t"
		"rep stosb\n\t"
		"add %[n], %%rsp\n\t"
		"xor %%eax, %%eax\n\t"
		"xor %%ecx, %%ecx\n\t"
		"xor %%edx, %%edx\n\t"
		"xor %%esi, %%esi\n\t"
		"xor %%edi, %%edi\n\t"
		"xor %%r8d, %%r8d\n\t"
		"xor %%r9d, %%r9d\n\t"
		"xor %%r10d, %%r10d\n\t"
		"xor %%r11d, %%r11d\n\t"
		"pxor %%xmm0, %%xmm0\n\t"
		"pxor %%xmm1, %%xmm1\n\t"
		"pxor %%xmm2, %%xmm2\n\t"
		"pxor %%xmm3, %%xmm3\n\t"
		"pxor %%xmm4, %%xmm4\n\t"
		"pxor %%xmm5, %%xmm5\n\t"
		"pxor %%xmm6, %%xmm6\n\t"
		"pxor %%xmm7, %%xmm7\n\t"
		"pxor %%xmm8, %%xmm8\n\t"
		"pxor %%xmm9, %%xmm9\n\t"
		"pxor %%xmm10, %%xmm10\n\t"
		"pxor %%xmm11, %%xmm11\n\t"
		"pxor %%xmm12, %%xmm12\n\t"
		"pxor %%xmm13, %%xmm13\n\t"
		"pxor %%xmm14, %%xmm14\n\t"
		"pxor %%xmm15, %%xmm15\n\t"
		:
		: [n] "i"(EXAMPLE_SCRUB_BYTES)
		: "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",
		  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
		  "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14",
		  "xmm15", "memory", "cc");
	/*
	 * The legacy pxor above leaves the upper halves of the ymm registers,
	 * and glibc's AVX-512 string functions (memmove-evex: realloc's copy)
	 * use ymm16-ymm31, which it does not touch at all: a realloc'ed pointer
	 * array stays in them. No clobbers: every vector register is
	 * caller-saved, and nothing follows in this noinline function.
	 */
	if (__builtin_cpu_supports("avx"))
		__asm__ volatile("vzeroall");
	if (__builtin_cpu_supports("avx512f"))
		__asm__ volatile(
			"vpxord %zmm16, %zmm16, %zmm16\n\tvpxord %zmm17, %zmm17, %zmm17\n\t"
			"vpxord %zmm18, %zmm18, %zmm18\n\tvpxord %zmm19, %zmm19, %zmm19\n\t"
			"vpxord %zmm20, %zmm20, %zmm20\n\tvpxord %zmm21, %zmm21, %zmm21\n\t"
			"vpxord %zmm22, %zmm22, %zmm22\n\tvpxord %zmm23, %zmm23, %zmm23\n\t"
			"vpxord %zmm24, %zmm24, %zmm24\n\tvpxord %zmm25, %zmm25, %zmm25\n\t"
			"vpxord %zmm26, %zmm26, %zmm26\n\tvpxord %zmm27, %zmm27, %zmm27\n\t"
			"vpxord %zmm28, %zmm28, %zmm28\n\tvpxord %zmm29, %zmm29, %zmm29\n\t"
			"vpxord %zmm30, %zmm30, %zmm30\n\tvpxord %zmm31, %zmm31, %zmm31");
#else
	volatile unsigned char area[EXAMPLE_SCRUB_BYTES];
	size_t i;

	for (i = 0; i < sizeof(area); i++)
		area[i] = 0;
#endif
}

static EX_NOINLINE EX_UNUSED void example_begin(void)
{
	char c;

	example_write(1, "ready\n");
	for (;;) {
		ssize_t n = read(0, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || c == '\n')
			break;
	}
}

/*
 * Wait out lsan -p's first 200 ms after the attach, during which the ranges
 * a program frees are not yet left out of the roots (an allocator call begun
 * before the attach could still hand that memory out). Examples whose leaks
 * hide behind stale pointers in freed memory call it before they free.
 */
static EX_UNUSED void example_settle(void)
{
	struct timespec ts = {0, 300 * 1000 * 1000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* True when LSAN_EXAMPLE_DAEMON is set (to anything, even empty). */
static EX_UNUSED int example_daemon_mode(void)
{
	return getenv("LSAN_EXAMPLE_DAEMON") != NULL;
}

static EX_NOINLINE EX_UNUSED void example_end(void)
{
	example_scrub_stack();
	example_write(1, "done\n");
	if (example_daemon_mode()) {
		for (;;)
			pause();
	}
}

#ifdef __cplusplus
}
#endif

#endif /* LSAN_EXAMPLES_COMMON_H */
