/*
 * reallocarray: grown arrays, one whose nmemb * size overflows (returns NULL
 * with ENOMEM, the old array stays), one freed.
 */
#include "../common.h"

static long *table;

/* reallocarray(NULL, 10, 8), then grown to 100 x 8: 1 x 800, kept. */
EX_NOINLINE void grow_array(void)
{
	long *q;

	table = reallocarray(NULL, 10, sizeof(long));
	memset(table, 0, 10 * sizeof(long));
	q = reallocarray(table, 100, sizeof(long));
	if (q == NULL)
		example_fail("reallocarray failed");
	table = q;
	table[99] = 99;
}

/* reallocarray(NULL, 4, 16) = 64 bytes; growing it to SIZE_MAX / 2 x 16
 * overflows: NULL, the 64 bytes stay, leaked. */
EX_NOINLINE void array_overflow(void)
{
	volatile size_t huge = SIZE_MAX / 2;
	char *p = reallocarray(NULL, 4, 16);
	char *q;

	memset(p, 'o', 64);
	q = reallocarray(p, huge, 16);
	if (q != NULL)
		example_fail("overflowing reallocarray succeeded");
}

/* reallocarray(NULL, 5, 5), freed. */
EX_NOINLINE void array_freed(void)
{
	free(reallocarray(NULL, 5, 5));
}

int main(void)
{
	example_begin();
	grow_array();
	array_overflow();
	array_freed();
	example_end();
	return 0;
}
