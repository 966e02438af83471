// Allocator calls whose pairing is easy to get wrong. Each allocating
// function is noinline so the test can name the call site. The test attaches
// after "ready", sends a line, and reads the live blocks after "done".
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static void *volatile keep[64];
// volatile so that the compiler neither warns about nor folds the
// impossible sizes.
static volatile size_t huge = SIZE_MAX - 4096, half = SIZE_MAX / 2;
static int nkeep;

static void hold(void *p) { keep[nkeep++] = p; }

NOINLINE void do_malloc(void) { hold(malloc(24)); hold(malloc(24)); free(malloc(7)); }
NOINLINE void do_calloc(void)
{
	hold(calloc(4, 8));
	// Overflows: fails, nothing recorded.
	void *volatile p = calloc(half, 4);
	if (p)
		abort();
}
NOINLINE void do_realloc_chain(void)
{
	void *p = realloc(NULL, 10); // jumps into malloc on glibc
	p = realloc(p, 100);
	p = realloc(p, 1000);
	hold(p);
}
NOINLINE void do_realloc_zero(void)
{
	void *p = malloc(50);
	void *q = realloc(p, 0); // frees p on glibc
	if (q)
		hold(q);
}
NOINLINE void do_realloc_fail(void)
{
	void *p = malloc(60);
	void *q = realloc(p, huge); // fails: p stays live
	if (q)
		abort();
	hold(p);
}
NOINLINE void do_reallocarray(void) { hold(reallocarray(NULL, 5, 6)); }
NOINLINE void do_posix_memalign(void)
{
	void *p = NULL;
	if (posix_memalign(&p, 64, 200) == 0)
		hold(p);
	if (posix_memalign(&p, 3, 200) == 0) // EINVAL: not recorded
		abort();
}
NOINLINE void do_aligned(void)
{
	hold(aligned_alloc(128, 256));
	hold(memalign(32, 48));
	hold(valloc(16));
#ifdef __GLIBC__
	hold(pvalloc(100)); // rounded to a page by glibc; the request is 100
#endif
}
NOINLINE void do_strdup(void) { hold(strdup("twelve bytes")); hold(strndup("abcdefgh", 3)); }
NOINLINE void do_free_null(void) { free(NULL); }

int main(void)
{
	printf("ready\n");
	fflush(stdout);
	char line[8];
	if (!fgets(line, sizeof line, stdin))
		return 1;
	do_malloc();
	do_calloc();
	do_realloc_chain();
	do_realloc_zero();
	do_realloc_fail();
	do_reallocarray();
	do_posix_memalign();
	do_aligned();
	do_strdup();
	do_free_null();
	printf("done\n");
	fflush(stdout);
	for (;;)
		pause();
}
