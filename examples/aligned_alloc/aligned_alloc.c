/*
 * aligned_alloc: kept, leaked and freed blocks (sizes are multiples of the
 * alignment, as C11 requires). In glibc, aligned_alloc and memalign are the
 * same function (one address, two symbols); with an alignment of at most 16
 * it tail-jumps (through _mid_memalign) into malloc, so malloc returns
 * straight to aligned_alloc's caller.
 */
#include "../common.h"

static void *kept[2];

/* 2 x aligned_alloc(256, 1024), kept. */
EX_NOINLINE void aa_keep(void)
{
	int i;

	for (i = 0; i < 2; i++)
		kept[i] = aligned_alloc(256, 1024);
}

/* 1 x aligned_alloc(32, 96), leaked. */
EX_NOINLINE void aa_leak(void)
{
	char *p = aligned_alloc(32, 96);

	memset(p, 'a', 96);
}

/* 2 x aligned_alloc(16, 160), leaked: served by malloc inside glibc. */
EX_NOINLINE void aa_small_align(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		char *p = aligned_alloc(16, 160);
		memset(p, 's', 160);
	}
}

/* 4 x aligned_alloc(16, 4096), freed. */
EX_NOINLINE void aa_freed(void)
{
	int i;

	for (i = 0; i < 4; i++)
		free(aligned_alloc(16, 4096));
}

int main(void)
{
	example_begin();
	aa_keep();
	aa_leak();
	aa_small_align();
	aa_freed();
	example_end();
	return 0;
}
