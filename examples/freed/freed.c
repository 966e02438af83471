/*
 * freed: every API allocates and the block is freed again, many times and
 * in different orders: nothing is outstanding, nothing leaks, except one
 * control block. Freed blocks hold no pointers (glibc reuses their memory;
 * stale pointers in freed memory must not matter anyway).
 */
#include "../common.h"
#include <malloc.h>

#define N 64

/* malloc/calloc/realloc/reallocarray: allocate N of each, free in reverse. */
EX_NOINLINE void free_basic(void)
{
	void *blocks[4 * N];
	int i;

	for (i = 0; i < N; i++) {
		blocks[4 * i] = malloc(16 + i);
		blocks[4 * i + 1] = calloc(i + 1, 8);
		blocks[4 * i + 2] = realloc(malloc(8), 100 + 10 * i);
		blocks[4 * i + 3] = reallocarray(NULL, i + 1, 12);
	}
	for (i = 4 * N - 1; i >= 0; i--)
		free(blocks[i]);
	memset(blocks, 0, sizeof(blocks));
}

/* aligned APIs and string copies, each freed at once. */
EX_NOINLINE void free_aligned(void)
{
	int i;

	for (i = 0; i < N; i++) {
		void *p = NULL;
		if (posix_memalign(&p, 64, 100 + i) != 0)
			example_fail("posix_memalign failed");
		free(p);
		free(aligned_alloc(128, 256));
		free(memalign(32, 33 + i));
		free(valloc(10 + i));
		free(pvalloc(4096));
		free(strdup("freed string"));
		free(strndup("freed string", 5));
	}
}

/* a realloc chain ending in realloc(p, 0), which frees on glibc. */
EX_NOINLINE void free_by_realloc(void)
{
	char *p = malloc(10);
	int i;

	for (i = 1; i < 20; i++)
		p = realloc(p, (size_t)i * 50);
	free(realloc(p, 0));
}

/* a large (mmap-served) block, freed. */
EX_NOINLINE void free_large(void)
{
	char *p = malloc(1 << 20);

	p[0] = 1;
	free(p);
}

/* control: 1 x 16 bytes, dropped. */
EX_NOINLINE void control_leak(void)
{
	char *p = malloc(16);

	memset(p, 'c', 16);
}

int main(void)
{
	example_begin();
	free_basic();
	free_aligned();
	free_by_realloc();
	free_large();
	control_leak();
	example_end();
	return 0;
}
