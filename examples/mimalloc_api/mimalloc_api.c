/*
 * mimalloc_api: mimalloc's own API, linked with -lmimalloc: the calls that
 * are not aliases of malloc (mi_malloc_aligned, mi_zalloc, mi_strdup,
 * mi_calloc_aligned, mi_reallocn, mi_heap_malloc, mi_realpath) and the
 * frees (mi_free, mi_free_size, mi_free_aligned). clang -fsanitize=leak
 * does not intercept mi_* calls, so expected.json is the program's own
 * bookkeeping.
 */
#include "../common.h"
#include <mimalloc.h>

static void *kept[3];

/* 2 x 100 bytes aligned to 64, leaked. */
EX_NOINLINE void leak_aligned(void)
{
	for (int i = 0; i < 2; i++)
		memset(mi_malloc_aligned(100, 64), 'a', 100);
}

/* 3 x 40 zeroed bytes, leaked. */
EX_NOINLINE void leak_zalloc(void)
{
	for (int i = 0; i < 3; i++)
		((char *)mi_zalloc(40))[0] = 'z';
}

/* "mimalloc strdup" (16 bytes with its NUL), twice, leaked. */
EX_NOINLINE void leak_strdup(void)
{
	for (int i = 0; i < 2; i++)
		if (!mi_strdup("mimalloc strdup"))
			_exit(1);
}

/* 5 x 24 bytes aligned to 32, then grown by mi_reallocn to 10 x 24 (it
 * may move), leaked. */
EX_NOINLINE void leak_reallocn(void)
{
	char *p = mi_calloc_aligned(5, 24, 32);
	p = mi_reallocn(p, 10, 24);
	p[0] = 'n';
}

/* 77 bytes from the default heap through mi_heap_malloc, leaked. */
EX_NOINLINE void leak_heap_malloc(void)
{
	memset(mi_heap_malloc(mi_heap_get_default(), 77), 'h', 77);
}

/* mi_realpath("/", NULL) allocates "/" (2 bytes); into a buffer of the
 * caller's it allocates nothing. Leaked once. */
EX_NOINLINE void leak_realpath(void)
{
	char buf[4096];
	if (!mi_realpath("/", buf) || !mi_realpath("/", NULL))
		_exit(1);
}

/* Released with each free: nothing left. */
EX_NOINLINE void churn(void)
{
	for (int i = 0; i < 4; i++) {
		void *p = mi_malloc(64);
		mi_free_size(p, 64);
		p = mi_malloc_aligned(128, 128);
		mi_free_aligned(p, 128);
		p = mi_zalloc(32);
		mi_free(p);
		p = mi_strdup("churn");
		mi_free(p);
	}
}

/* Kept in a global: 48 bytes, 16 zeroed, 10 aligned. */
EX_NOINLINE void keep_some(void)
{
	kept[0] = mi_malloc(48);
	kept[1] = mi_zalloc(16);
	kept[2] = mi_malloc_aligned(10, 16);
}

int main(void)
{
	example_begin();
	leak_aligned();
	leak_zalloc();
	leak_strdup();
	leak_reallocn();
	leak_heap_malloc();
	leak_realpath();
	churn();
	keep_some();
	example_end();
	return 0;
}
