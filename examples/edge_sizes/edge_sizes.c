/*
 * edge_sizes: zero-size allocations and pvalloc of a size that is not a page
 * multiple, where "the size of a block" is ambiguous. lsan counts the
 * requested size: 0 for malloc(0), calloc(0, n), realloc(NULL, 0) and
 * posix_memalign(.., 0), and n for pvalloc(n). LSan counts 1 byte for
 * malloc(0), calloc(0, n) and posix_memalign(.., 0) (it allocates 1 byte),
 * 0 for realloc(NULL, 0), and pvalloc(n) rounded up to the page size, so its
 * byte totals differ (lsan_leaks). A zero-size block kept by a pointer to
 * its start is reachable, for both.
 */
#include "../common.h"
#include <malloc.h>

static void *kept_zero;

/* 2 x malloc(0), leaked. */
EX_NOINLINE void leak_zero_malloc(void)
{
	void *volatile p;

	p = malloc(0);
	p = malloc(0);
	p = NULL;
	(void)p;
}

/* 1 x malloc(0), kept by a pointer to its start. */
EX_NOINLINE void keep_zero_malloc(void)
{
	kept_zero = malloc(0);
}

/* calloc(0, 16), leaked. */
EX_NOINLINE void leak_zero_calloc(void)
{
	void *volatile p = calloc(0, 16);

	p = NULL;
	(void)p;
}

/* realloc(NULL, 0) (= malloc(0) on glibc), leaked. */
EX_NOINLINE void leak_zero_realloc(void)
{
	void *volatile p = realloc(NULL, 0);

	p = NULL;
	(void)p;
}

/* posix_memalign(&p, 64, 0), leaked. */
EX_NOINLINE void leak_zero_memalign(void)
{
	void *p = NULL;

	if (posix_memalign(&p, 64, 0) != 0 || p == NULL)
		example_fail("posix_memalign(64, 0) failed");
	p = NULL;
}

/* pvalloc(100): 100 bytes requested, a whole page behind it. Leaked. */
EX_NOINLINE void leak_pvalloc(void)
{
	char *p = pvalloc(100);

	p[0] = 1;
}

int main(void)
{
	example_begin();
	leak_zero_malloc();
	keep_zero_malloc();
	leak_zero_calloc();
	leak_zero_realloc();
	leak_zero_memalign();
	leak_pvalloc();
	example_end();
	return 0;
}
