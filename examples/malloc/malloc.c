/*
 * malloc: plain malloc/free. Blocks kept in a global array (outstanding, not
 * leaks), blocks leaked (outstanding and direct leaks), freed churn (nothing)
 * and one block above glibc's mmap threshold (served by mmap).
 * The jemalloc and tcmalloc examples build this same file.
 */
#include "../common.h"

#define N_SMALL 4
#define N_HALF 6

static char *small_blocks[N_SMALL];
static char *half_blocks[N_HALF];
static char *big_block;

/* 4 x 32 bytes, kept. */
EX_NOINLINE void keep_small(void)
{
	int i;

	for (i = 0; i < N_SMALL; i++) {
		small_blocks[i] = malloc(32);
		memset(small_blocks[i], 's', 32);
	}
}

/* 3 x 1020 bytes, leaked. */
EX_NOINLINE void leak_medium(void)
{
	int i;

	for (i = 0; i < 3; i++) {
		char *p = malloc(1020);
		memset(p, 'm', 1020);
	}
}

/* 100 x 64 bytes, each freed at once. */
EX_NOINLINE void churn(void)
{
	int i;

	for (i = 0; i < 100; i++) {
		char *p = malloc(64);
		memset(p, 'c', 64);
		free(p);
	}
}

/* 6 x 256 bytes, 3 of them freed again: 3 x 256 kept. */
EX_NOINLINE void free_half(void)
{
	int i;

	for (i = 0; i < N_HALF; i++)
		half_blocks[i] = malloc(256);
	for (i = 0; i < N_HALF; i += 2) {
		free(half_blocks[i]);
		half_blocks[i] = NULL;
	}
}

/* 1 x 200000 bytes (above the 128 KiB mmap threshold), kept. */
EX_NOINLINE void keep_big(void)
{
	big_block = malloc(200000);
	big_block[0] = 'b';
	big_block[199999] = 'b';
}

int main(void)
{
	example_begin();
	keep_small();
	leak_medium();
	churn();
	free_half();
	keep_big();
	example_end();
	return 0;
}
