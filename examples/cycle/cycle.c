/*
 * cycle: leaked structures that point to each other.
 *  - a ring of 5 nodes with no outside pointer: every node is pointed to by
 *    another leaked node, so all 5 are indirect leaks and there is no direct
 *    leak for this ring at all;
 *  - a "lasso": a tail block pointing into a ring of 3; the tail is direct,
 *    the ring indirect;
 *  - a block pointing only to itself: a pointer from a block to itself does
 *    not count (LSan), so it is a direct leak.
 */
#include "../common.h"

struct ring {
	struct ring *next;
	long value[3];
}; /* 32 bytes */

/* n ring nodes of 32 bytes, closed into a cycle; returns one node. */
EX_NOINLINE struct ring *make_ring(int n)
{
	struct ring *first = malloc(sizeof(*first));
	struct ring *last = first;
	int i;

	first->value[0] = 0;
	for (i = 1; i < n; i++) {
		struct ring *r = malloc(sizeof(*r));
		r->value[0] = i;
		last->next = r;
		last = r;
	}
	last->next = first;
	return first;
}

EX_NOINLINE void leak_ring(void)
{
	struct ring *r = make_ring(5);

	r->value[1] = 1;
}

/* 64-byte tail pointing into a ring of 3. */
EX_NOINLINE void make_lasso(void)
{
	struct ring **tail = calloc(8, sizeof(struct ring *));

	tail[5] = make_ring(3);
}

/* 48 bytes whose first word points to itself. */
EX_NOINLINE void make_self_loop(void)
{
	void **self = malloc(48);

	memset(self, 0, 48);
	self[0] = self;
}

int main(void)
{
	example_begin();
	leak_ring();
	make_lasso();
	make_self_loop();
	example_end();
	return 0;
}
