/*
 * mmap_root: the only pointer to a block is stored in anonymous memory the
 * program mapped itself. LSan does not scan such memory (only regions
 * registered with __lsan_register_root_region): the block leaks. lsan run
 * uses LSan's roots and agrees; lsan -p cannot tell this region from the
 * anonymous memory where blocks allocated before the attach live, so it
 * keeps scanning it, and the block stays reachable.
 */
#include "../common.h"
#include <sys/mman.h>

#define REGION (1 << 20)

static void **region;

/* 1 x malloc(40): its pointer lives only in the mapped region. */
EX_NOINLINE void stash_in_mapping(void)
{
	region = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		example_fail("mmap");
	region[4096] = malloc(40);
}

int main(void)
{
	example_begin();
	stash_in_mapping();
	example_end();
	return 0;
}
