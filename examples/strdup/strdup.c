/*
 * strdup/strndup: kept, leaked and freed copies. glibc's strdup calls malloc
 * internally: the block belongs to strdup's caller, with strlen + 1 bytes
 * (strndup: min(strlen, n) + 1).
 */
#include "../common.h"

static char *names[3];

/* "alpha" (6), "bravo-charlie" (14), "delta" (6): 3 blocks, 26 bytes, kept. */
EX_NOINLINE void dup_names(void)
{
	names[0] = strdup("alpha");
	names[1] = strdup("bravo-charlie");
	names[2] = strdup("delta");
}

/* strndup("configuration", 6) = 7 bytes, strndup("abc", 100) = 4 bytes:
 * 2 blocks, 11 bytes, leaked. */
EX_NOINLINE void dup_prefix(void)
{
	volatile size_t bound = 100; /* a constant bound > 4 draws -Wstringop-overread */
	char *a = strndup("configuration", 6);
	char *b = strndup("abc", bound);

	a[0] = 'C';
	b[0] = 'A';
}

/* strdup + free, strndup + free. */
EX_NOINLINE void dup_freed(void)
{
	free(strdup("temporary"));
	free(strndup("temporary", 3));
}

int main(void)
{
	example_begin();
	dup_names();
	dup_prefix();
	dup_freed();
	example_end();
	return 0;
}
