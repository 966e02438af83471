/*
 * realloc: a block grown 20 times (and one shrunk), realloc(NULL, n) (a
 * plain allocation), realloc(p, 0) (frees p on glibc and returns NULL) and a
 * huge realloc that fails and leaves the old block alone.
 * Every realloc result belongs to the function that called realloc.
 */
#include "../common.h"

static char *grown;
static char *shrunk;

/* malloc(16), then realloc to 80, 144, ..., 1296 bytes: 1 x 1296, kept. */
EX_NOINLINE void grow_chain(void)
{
	int i;

	grown = malloc(16);
	memset(grown, 'g', 16);
	for (i = 1; i <= 20; i++) {
		char *q = realloc(grown, 16 + (size_t)i * 64);
		if (q == NULL)
			example_fail("realloc failed");
		grown = q;
		grown[16 + i * 64 - 1] = 'g';
	}
}

/* malloc(4000), then realloc down to 40 bytes: 1 x 40, kept. */
EX_NOINLINE void shrink(void)
{
	char *q;

	shrunk = malloc(4000);
	memset(shrunk, 's', 4000);
	q = realloc(shrunk, 40);
	if (q == NULL)
		example_fail("realloc failed");
	shrunk = q;
}

/* realloc(NULL, 300): 1 x 300, leaked. */
EX_NOINLINE void realloc_from_null(void)
{
	char *p = realloc(NULL, 300);

	memset(p, 'n', 300);
}

/* malloc(500), realloc(p, 0): glibc frees p and returns NULL. Nothing left. */
EX_NOINLINE void realloc_to_zero(void)
{
	char *p = malloc(500);
	char *q;

	memset(p, 'z', 500);
	q = realloc(p, 0);
	free(q); /* NULL on glibc; an allocator returning a block gets it freed */
}

/* malloc(700), realloc to SIZE_MAX / 2 fails: the 700 bytes stay, leaked. */
EX_NOINLINE void realloc_fail(void)
{
	volatile size_t huge = SIZE_MAX / 2;
	char *p = malloc(700);
	char *q;

	memset(p, 'f', 700);
	q = realloc(p, huge);
	if (q != NULL)
		example_fail("huge realloc succeeded");
}

int main(void)
{
	example_begin();
	grow_chain();
	shrink();
	realloc_from_null();
	realloc_to_zero();
	realloc_fail();
	example_end();
	return 0;
}
