/*
 * pvalloc (obsolete, <malloc.h>): kept and leaked blocks whose sizes are page
 * multiples, and freed ones that are not. pvalloc rounds the size up to a
 * page multiple; LSan counts the rounded size, lsan the requested one, so the
 * counted blocks use sizes where both agree (see edge_sizes for pvalloc(100)).
 */
#include "../common.h"
#include <malloc.h>

static void *kept;

/* 1 x pvalloc(8192), kept. */
EX_NOINLINE void pv_keep(void)
{
	kept = pvalloc(8192);
}

/* 2 x pvalloc(4096), leaked. */
EX_NOINLINE void pv_leak(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		char *p = pvalloc(4096);
		memset(p, 'p', 4096);
	}
}

/* pvalloc(100) and pvalloc(5000), freed. */
EX_NOINLINE void pv_freed(void)
{
	free(pvalloc(100));
	free(pvalloc(5000));
}

int main(void)
{
	example_begin();
	pv_keep();
	pv_leak();
	pv_freed();
	example_end();
	return 0;
}
