/*
 * large: 64 MiB blocks (served by mmap in glibc, by the secondary allocator
 * in LSan). One is leaked and holds, 48 MiB in, the only pointer to a small
 * block (an indirect leak). One is kept through an interior pointer 40 MiB
 * in and holds, 32 MiB in, the only pointer to another small block
 * (reachable: a checker must scan the large block's contents).
 * Only a few pages of each block are ever touched.
 */
#include "../common.h"

#define MIB ((size_t)1 << 20)
#define BIG (64 * MIB)

static char *kept_inside; /* kept block + 40 MiB */

/* 64 bytes, referenced only from the leaked big block. */
EX_NOINLINE void *leaked_child(void)
{
	return malloc(64);
}

/* 96 bytes, referenced only from the kept big block. */
EX_NOINLINE void *kept_child(void)
{
	return malloc(96);
}

EX_NOINLINE void big_leak(void)
{
	char *p = malloc(BIG);
	void *child = leaked_child();

	memcpy(p + 48 * MIB, &child, sizeof(child));
}

EX_NOINLINE void big_keep(void)
{
	char *p = malloc(BIG);
	void *child = kept_child();

	memcpy(p + 32 * MIB, &child, sizeof(child));
	kept_inside = p + 40 * MIB;
}

int main(void)
{
	example_begin();
	big_leak();
	big_keep();
	example_end();
	return 0;
}
