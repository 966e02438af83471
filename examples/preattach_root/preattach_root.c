/*
 * preattach_root: new blocks referenced only from heap blocks allocated
 * BEFORE the trigger (so before lsan attached: it never saw them allocated
 * and knows neither their size nor their stack). The old blocks are reachable
 * from globals, so every new block is reachable too: no leaks except the
 * control. lsan must scan memory it did not see allocated as roots.
 */
#include "../common.h"

static void **old_table;   /* old: 16 slots */
static void **old_chain;   /* old: 32 bytes -> old 64 bytes holding new blocks */

/* Before the trigger: old_table (128 bytes), old_chain (32) -> (64). */
EX_NOINLINE void make_old_blocks(void)
{
	old_table = calloc(16, sizeof(void *));
	old_chain = calloc(4, sizeof(void *));
	old_chain[2] = calloc(8, sizeof(void *));
}

/* After: 8 x 48 bytes into old_table[0..7]. */
EX_NOINLINE void fill_old_table(void)
{
	int i;

	for (i = 0; i < 8; i++)
		old_table[i] = malloc(48);
}

/* After: 2 x 80 bytes into the old block two hops from a global. */
EX_NOINLINE void fill_old_chain(void)
{
	void **second = old_chain[2];

	second[0] = malloc(80);
	second[7] = malloc(80);
}

/* After: a 24-byte block in old_table[8] holding a 56-byte block (made by
 * nested_child): new -> new under an old root. */
EX_NOINLINE void *nested_child(void)
{
	return malloc(56);
}

EX_NOINLINE void fill_nested(void)
{
	void **x = malloc(24);

	x[0] = nested_child();
	x[1] = x[2] = NULL;
	old_table[8] = x;
}

/* control: 1 x 48 bytes, dropped. */
EX_NOINLINE void control_leak(void)
{
	char *p = malloc(48);

	memset(p, 'c', 48);
}

int main(void)
{
	make_old_blocks();
	example_begin();
	fill_old_table();
	fill_old_chain();
	fill_nested();
	control_leak();
	example_end();
	return 0;
}
