/*
 * calloc: kept, leaked and freed calloc blocks, and a calloc whose
 * nmemb * size overflows: it returns NULL and allocates nothing.
 */
#include "../common.h"

static void *kept[5];

/* 5 x calloc(10, 24) = 5 x 240 bytes, kept. */
EX_NOINLINE void calloc_keep(void)
{
	int i;

	for (i = 0; i < 5; i++)
		kept[i] = calloc(10, 24);
}

/* 2 x calloc(3, 100) = 2 x 300 bytes, leaked. */
EX_NOINLINE void calloc_leak(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		char *p = calloc(3, 100);
		p[0] = 'x';
	}
}

/* calloc(SIZE_MAX / 8, 16): the product overflows, NULL, nothing allocated. */
EX_NOINLINE void calloc_overflow(void)
{
	volatile size_t nmemb = SIZE_MAX / 8;
	void *p = calloc(nmemb, 16);

	if (p != NULL)
		example_fail("calloc overflow returned a block");
}

/* 3 x calloc(4, 4), freed. */
EX_NOINLINE void calloc_freed(void)
{
	int i;

	for (i = 0; i < 3; i++)
		free(calloc(4, 4));
}

int main(void)
{
	example_begin();
	calloc_keep();
	calloc_leak();
	calloc_overflow();
	calloc_freed();
	example_end();
	return 0;
}
