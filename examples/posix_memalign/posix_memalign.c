/*
 * posix_memalign: kept, leaked and freed blocks, and two calls that fail
 * with EINVAL (alignment not a power of two; power of two smaller than
 * sizeof(void *)) and allocate nothing. With an alignment of at most 16,
 * glibc's posix_memalign ends in malloc (_mid_memalign tail-jumps to it):
 * a malloc probe fires inside posix_memalign for the same block.
 */
#include "../common.h"

static void *kept[3];

/* 3 x posix_memalign(64, 200) = 3 x 200 bytes, kept. */
EX_NOINLINE void pm_keep(void)
{
	int i;

	for (i = 0; i < 3; i++)
		if (posix_memalign(&kept[i], 64, 200) != 0)
			example_fail("posix_memalign failed");
}

/* 1 x posix_memalign(4096, 5005), leaked. */
EX_NOINLINE void pm_leak(void)
{
	void *p = NULL;

	if (posix_memalign(&p, 4096, 5005) != 0)
		example_fail("posix_memalign failed");
	memset(p, 'l', 5005);
}

/* 2 x posix_memalign(16, 80), leaked: served by malloc inside glibc. */
EX_NOINLINE void pm_small_align(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		void *p = NULL;
		if (posix_memalign(&p, 16, 80) != 0)
			example_fail("posix_memalign failed");
		memset(p, 's', 80);
	}
}

/* Alignments 24 and 4: EINVAL, nothing allocated, *memptr untouched. */
EX_NOINLINE void pm_einval(void)
{
	void *p = NULL;

	if (posix_memalign(&p, 24, 100) != EINVAL || p != NULL)
		example_fail("posix_memalign(24) did not fail with EINVAL");
	if (posix_memalign(&p, 4, 100) != EINVAL || p != NULL)
		example_fail("posix_memalign(4) did not fail with EINVAL");
}

/* 2 x posix_memalign(32, 48), freed. */
EX_NOINLINE void pm_freed(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		void *p = NULL;
		if (posix_memalign(&p, 32, 48) != 0)
			example_fail("posix_memalign failed");
		free(p);
	}
}

int main(void)
{
	example_begin();
	pm_keep();
	pm_leak();
	pm_small_align();
	pm_einval();
	pm_freed();
	example_end();
	return 0;
}
