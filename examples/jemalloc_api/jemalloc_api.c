/*
 * jemalloc_api: jemalloc's non-standard API, linked with -ljemalloc:
 * mallocx (plain and MALLOCX_ALIGN), rallocx (a move that frees the old
 * block), xallocx (a resize in place), and the frees sdallocx and dallocx.
 * clang -fsanitize=leak does not intercept these calls, so expected.json
 * is the program's own bookkeeping.
 */
#include "../common.h"
#include <strings.h>
#include <jemalloc/jemalloc.h>

static void *kept[4];

/* 3 x 100 bytes, leaked. */
EX_NOINLINE void leak_mallocx(void)
{
	for (int i = 0; i < 3; i++)
		memset(mallocx(100, 0), 'x', 100);
}

/* 2 x 200 bytes aligned to 256, leaked. */
EX_NOINLINE void leak_mallocx_aligned(void)
{
	for (int i = 0; i < 2; i++)
		memset(mallocx(200, MALLOCX_ALIGN(256)), 'a', 200);
}

/* 50 bytes grown to 5000 with rallocx (it moves), leaked: the 50-byte
 * block is gone, the 5000-byte one is the leak. */
EX_NOINLINE void leak_rallocx(void)
{
	char *p = mallocx(50, 0);
	memset(p, 'r', 50);
	p = rallocx(p, 5000, 0);
	memset(p, 'R', 5000);
}

/* 1000 bytes resized in place to 1024 (the same size class), leaked. */
EX_NOINLINE void leak_xallocx(void)
{
	char *p = mallocx(1000, 0);
	if (xallocx(p, 1024, 0, 0) >= 1024)
		memset(p, 'X', 1024);
}

/* 8 x 64 bytes released with sdallocx and dallocx: nothing left. */
EX_NOINLINE void churn_sized(void)
{
	for (int i = 0; i < 4; i++) {
		void *p = mallocx(64, 0);
		sdallocx(p, 64, 0);
		p = mallocx(64, MALLOCX_ZERO);
		dallocx(p, 0);
	}
}

/* 4 x 48 bytes kept in a global, the last two moved by rallocx to 96. */
EX_NOINLINE void keep_some(void)
{
	for (int i = 0; i < 4; i++)
		kept[i] = mallocx(48, 0);
	for (int i = 2; i < 4; i++)
		kept[i] = rallocx(kept[i], 96, 0);
}

int main(void)
{
	example_begin();
	leak_mallocx();
	leak_mallocx_aligned();
	leak_rallocx();
	leak_xallocx();
	churn_sized();
	keep_some();
	example_end();
	return 0;
}
