/*
 * musl_static: a statically linked musl program (musl-gcc -static): no
 * libc.so, no dynamic symbols; the allocator (mallocng) lives in the
 * executable itself. malloc, calloc, realloc and free: kept, leaked, freed.
 */
#include "../common.h"

static char *kept[3];

/* 3 x malloc(80), kept. */
EX_NOINLINE void musl_keep(void)
{
	int i;

	for (i = 0; i < 3; i++) {
		kept[i] = malloc(80);
		memset(kept[i], 'k', 80);
	}
}

/* 4 x calloc(2, 50) = 4 x 100 bytes, leaked. */
EX_NOINLINE void musl_leak(void)
{
	int i;

	for (i = 0; i < 4; i++) {
		char *p = calloc(2, 50);
		p[0] = 'l';
	}
}

/* malloc(10) grown by realloc to 3000 bytes, leaked. */
EX_NOINLINE void musl_grow(void)
{
	char *p = malloc(10);
	int i;

	for (i = 1; i <= 3; i++) {
		char *q = realloc(p, (size_t)i * 1000);
		if (q == NULL)
			example_fail("realloc failed");
		p = q;
	}
	p[2999] = 'g';
}

/* 50 x malloc(24) + free. */
EX_NOINLINE void musl_freed(void)
{
	int i;

	for (i = 0; i < 50; i++)
		free(malloc(24));
}

int main(void)
{
	example_begin();
	musl_keep();
	musl_leak();
	musl_grow();
	musl_freed();
	example_end();
	return 0;
}
