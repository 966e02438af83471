/*
 * tcmalloc_api: gperftools' tc_* entry points, linked with -ltcmalloc:
 * tc_malloc, tc_calloc, tc_realloc, tc_memalign and tc_malloc_skip_new_handler,
 * released with tc_free, tc_free_sized and tc_cfree (the C++ tc_new* and
 * tc_delete* calls are aliases of the operators, probed as such). clang -fsanitize=leak
 * does not intercept tc_* calls, so expected.json is the program's own
 * bookkeeping.
 */
#include "../common.h"
#include <gperftools/tcmalloc.h>

static void *kept[2];

/* 2 x 90 bytes, leaked. */
EX_NOINLINE void leak_tc_malloc(void)
{
	for (int i = 0; i < 2; i++)
		memset(tc_malloc(90), 't', 90);
}

/* 3 x 4 x 10 bytes, leaked. */
EX_NOINLINE void leak_tc_calloc(void)
{
	for (int i = 0; i < 3; i++)
		((char *)tc_calloc(4, 10))[0] = 'c';
}

/* 30 bytes grown to 3000 with tc_realloc, leaked. */
EX_NOINLINE void leak_tc_realloc(void)
{
	char *p = tc_malloc(30);
	p = tc_realloc(p, 3000);
	p[0] = 'r';
}

/* 100 bytes aligned to 128, leaked. */
EX_NOINLINE void leak_tc_memalign(void)
{
	memset(tc_memalign(128, 100), 'a', 100);
}

/* Released with each free: nothing left. */
EX_NOINLINE void churn(void)
{
	for (int i = 0; i < 4; i++) {
		void *p = tc_malloc(64);
		tc_free_sized(p, 64);
		p = tc_malloc_skip_new_handler(48);
		tc_cfree(p);
		p = tc_calloc(2, 8);
		tc_free(p);
	}
}

/* Kept in a global: 24 + 56 bytes. */
EX_NOINLINE void keep_some(void)
{
	kept[0] = tc_malloc(24);
	kept[1] = tc_malloc_skip_new_handler(56);
}

int main(void)
{
	example_begin();
	leak_tc_malloc();
	leak_tc_calloc();
	leak_tc_realloc();
	leak_tc_memalign();
	churn();
	keep_some();
	example_end();
	return 0;
}
