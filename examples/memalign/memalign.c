/* memalign (obsolete, <malloc.h>): kept, leaked and freed blocks. */
#include "../common.h"
#include <malloc.h>

static void *kept[4];

/* 4 x memalign(128, 300), kept. */
EX_NOINLINE void ma_keep(void)
{
	int i;

	for (i = 0; i < 4; i++)
		kept[i] = memalign(128, 300);
}

/* 2 x memalign(64, 64), leaked. */
EX_NOINLINE void ma_leak(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		char *p = memalign(64, 64);
		memset(p, 'm', 64);
	}
}

/* 3 x memalign(8, 48), kept: alignment <= 16, served by malloc in glibc. */
static void *small[3];

EX_NOINLINE void ma_small_align(void)
{
	int i;

	for (i = 0; i < 3; i++)
		small[i] = memalign(8, 48);
}

/* 1 x memalign(4096, 10), freed. */
EX_NOINLINE void ma_freed(void)
{
	free(memalign(4096, 10));
}

int main(void)
{
	example_begin();
	ma_keep();
	ma_leak();
	ma_small_align();
	ma_freed();
	example_end();
	return 0;
}
