/*
 * arena_top: a trap for checkers that scan the allocator's own state as
 * roots. glibc's malloc keeps a pointer to the header of its "top" chunk
 * (main_arena.top in libc's .data; a thread arena keeps it in the arena
 * header at the start of its mmap'd heap). A block carved from the top chunk
 * ends where the new top chunk's header begins, and since a chunk may use the
 * next chunk's first 8 bytes (prev_size) for data, that header lies INSIDE
 * the block's requested range when the request is 1..8 bytes past a multiple
 * of 16 (40 = 32 + 8 here). So, at "done", glibc's top pointer points 32 bytes
 * into the last 40-byte block each of these functions allocated. Both blocks
 * are leaked all the same: the allocator's bookkeeping is not a reference.
 * Likewise for pointers in free-chunk bins (chunk headers of free chunks).
 */
#include "../common.h"
#include <pthread.h>

static int gate[2], ack[2];

static void read_byte(int fd)
{
	char c;

	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
}

/* main thread, main arena: 3 x 40 bytes, the last one next to the top chunk. */
EX_NOINLINE void leak_at_top(void)
{
	int i;

	for (i = 0; i < 3; i++) {
		char *p = malloc(40);
		memset(p, 't', 40);
	}
}

/* second thread, its own arena: 2 x 40 bytes, the last one next to that
 * arena's top chunk. */
EX_NOINLINE void thread_leak_at_top(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		char *p = malloc(40);
		memset(p, 'u', 40);
	}
}

static void *worker(void *arg)
{
	(void)arg;
	read_byte(gate[0]);
	thread_leak_at_top();
	example_scrub_stack();
	if (write(ack[1], "a", 1) != 1)
		example_fail("write ack");
	read_byte(gate[0]); /* parked: the arena stays attached to a live thread */
	return NULL;
}

int main(void)
{
	pthread_t tid;

	if (pipe(gate) != 0 || pipe(ack) != 0)
		example_fail("pipe");
	if (pthread_create(&tid, NULL, worker, NULL) != 0)
		example_fail("pthread_create");
	example_begin();
	if (write(gate[1], "g", 1) != 1)
		example_fail("write gate");
	read_byte(ack[0]);
	leak_at_top();
	example_end();
	return 0;
}
