/* leak_apis: one direct leak through each allocation API, each in its own
 * function: the leak is reported at the API's caller with the requested size. */
#include "../common.h"
#include <malloc.h>

EX_NOINLINE void leak_malloc(void)
{
	char *p = malloc(31);

	p[0] = 1;
}

EX_NOINLINE void leak_calloc(void)
{
	char *p = calloc(7, 9); /* 63 */

	p[0] = 1;
}

/* malloc(10) moved by realloc to 1020 bytes: the leaked block is realloc's. */
EX_NOINLINE void leak_realloc(void)
{
	char *p = malloc(10);

	p = realloc(p, 1020);
	p[1019] = 1;
}

EX_NOINLINE void leak_reallocarray(void)
{
	char *p = reallocarray(NULL, 5, 15); /* 75 */

	p[0] = 1;
}

EX_NOINLINE void leak_posix_memalign(void)
{
	void *p = NULL;

	if (posix_memalign(&p, 512, 320) != 0)
		example_fail("posix_memalign failed");
	memset(p, 1, 320);
}

EX_NOINLINE void leak_aligned_alloc(void)
{
	char *p = aligned_alloc(64, 192);

	p[0] = 1;
}

EX_NOINLINE void leak_memalign(void)
{
	char *p = memalign(32, 60);

	p[0] = 1;
}

EX_NOINLINE void leak_valloc(void)
{
	char *p = valloc(77);

	p[0] = 1;
}

EX_NOINLINE void leak_strdup(void)
{
	char *p = strdup("leak me"); /* 8 */

	p[0] = 'L';
}

EX_NOINLINE void leak_strndup(void)
{
	char *p = strndup("truncated string", 9); /* 10 */

	p[0] = 'T';
}

int main(void)
{
	example_begin();
	leak_malloc();
	leak_calloc();
	leak_realloc();
	leak_reallocarray();
	leak_posix_memalign();
	leak_aligned_alloc();
	leak_memalign();
	leak_valloc();
	leak_strdup();
	leak_strndup();
	example_end();
	return 0;
}
