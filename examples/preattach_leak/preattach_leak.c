/*
 * preattach_leak: what lsan cannot know. Before the trigger the program
 * leaks a block (old_leak) and allocates an "orphan" block; after the trigger
 * it stores two new blocks in the orphan and then drops the orphan's only
 * pointer. LSan, which saw everything, reports old_leak and the orphan as
 * direct leaks and the two new blocks as indirect. lsan never saw the old
 * blocks: it cannot report them, and since it cannot tell whether memory it
 * did not see allocated is reachable, it scans that memory as a root, so the
 * two new blocks are not leaks for lsan. Only the control leak is. LSan
 * parity is off on purpose; lsan_leaks records what LSan reports.
 */
#include "../common.h"

static void **orphan;

/* Before the trigger: 1000 bytes, dropped. */
EX_NOINLINE void old_leak(void)
{
	char *p = malloc(1000);

	memset(p, 'o', 1000);
}

/* Before the trigger: 64 bytes, kept in a global for now. */
EX_NOINLINE void make_orphan(void)
{
	orphan = calloc(8, sizeof(void *));
}

/* After: 2 x 72 bytes into the orphan, then the orphan is dropped. */
EX_NOINLINE void fill_orphan(void)
{
	orphan[0] = malloc(72);
	orphan[1] = malloc(72);
	orphan = NULL;
}

/* control: 1 x 48 bytes, dropped. */
EX_NOINLINE void control_leak(void)
{
	char *p = malloc(48);

	memset(p, 'c', 48);
}

int main(void)
{
	old_leak();
	make_orphan();
	example_begin();
	fill_orphan();
	control_leak();
	example_end();
	return 0;
}
