/*
 * root_bss: blocks whose only pointers live in .bss (zero-initialized
 * globals, one of them a static local) are reachable, not leaks. One control
 * block whose pointer is dropped is a direct leak.
 */
#include "../common.h"

static void *bss_slots[4];        /* .bss */
struct holder {
	long tag;
	void *ptr;
};
struct holder bss_holder;         /* .bss, pointer at offset 8 */

/* 4 x 128 bytes into bss_slots. */
EX_NOINLINE void keep_in_bss(void)
{
	int i;

	for (i = 0; i < 4; i++)
		bss_slots[i] = malloc(128);
}

/* 1 x 300 bytes into a struct field in .bss. */
EX_NOINLINE void keep_in_struct(void)
{
	bss_holder.ptr = malloc(300);
}

/* 1 x 64 bytes into a function's static local (.bss). */
EX_NOINLINE void keep_in_static_local(void)
{
	static void *cache;

	if (cache == NULL)
		cache = malloc(64);
}

/* control: 1 x 48 bytes, dropped. */
EX_NOINLINE void control_leak(void)
{
	char *p = malloc(48);

	memset(p, 'c', 48);
}

int main(void)
{
	example_begin();
	keep_in_bss();
	keep_in_struct();
	keep_in_static_local();
	control_leak();
	example_end();
	return 0;
}
