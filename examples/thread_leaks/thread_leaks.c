/*
 * thread_leaks: four threads leak, each from its own function: plain direct
 * leaks, a dropped list (direct head + indirect nodes), calloc leaks, and a
 * thread that leaks and then stays alive (parked) while holding one more
 * block on its stack (not a leak). The other three are joined.
 */
#include "../common.h"
#include <pthread.h>

struct node {
	struct node *next;
	long v;
}; /* 16 bytes */

static int gate[2], ack[2], park[2];

static void read_byte(int fd)
{
	char c;

	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
}

/* thread 1: 5 x 48 bytes, direct. */
EX_NOINLINE void t1_leak(void)
{
	int i;

	for (i = 0; i < 5; i++) {
		char *p = malloc(48);
		memset(p, '1', 48);
	}
}

/* thread 2: a 4-node list, head dropped: 1 direct + 3 indirect, 16 bytes each. */
EX_NOINLINE void t2_leak_list(void)
{
	struct node *head = NULL;
	int i;

	for (i = 0; i < 4; i++) {
		struct node *n = malloc(sizeof(*n));
		n->next = head;
		n->v = i;
		head = n;
	}
}

/* thread 3: 2 x calloc(8, 16) = 2 x 128 bytes, direct. */
EX_NOINLINE void t3_leak_calloc(void)
{
	int i;

	for (i = 0; i < 2; i++) {
		char *p = calloc(8, 16);
		p[0] = '3';
	}
}

/* thread 4: 7 x 32 bytes, direct. */
EX_NOINLINE void t4_leak(void)
{
	int i;

	for (i = 0; i < 7; i++) {
		char *p = malloc(32);
		memset(p, '4', 32);
	}
}

/* thread 4: 1 x 88 bytes, held on its stack while it is parked. */
EX_NOINLINE void *t4_hold(void)
{
	return malloc(88);
}

static void *joined_thread(void *arg)
{
	void (*work)(void) = (void (*)(void))arg;

	read_byte(gate[0]);
	work();
	example_scrub_stack();
	return NULL;
}

static void *parked_thread(void *arg)
{
	void *volatile held;

	(void)arg;
	read_byte(gate[0]);
	t4_leak();
	held = t4_hold();
	example_scrub_stack();
	if (write(ack[1], "p", 1) != 1)
		example_fail("write ack");
	while (held != NULL)
		read_byte(park[0]); /* nobody writes: parked until the process ends */
	return NULL;
}

int main(void)
{
	void (*work[3])(void) = {t1_leak, t2_leak_list, t3_leak_calloc};
	pthread_t tid[4];
	int i;

	if (pipe(gate) != 0 || pipe(ack) != 0 || pipe(park) != 0)
		example_fail("pipe");
	for (i = 0; i < 3; i++)
		if (pthread_create(&tid[i], NULL, joined_thread, (void *)work[i]) != 0)
			example_fail("pthread_create");
	if (pthread_create(&tid[3], NULL, parked_thread, NULL) != 0)
		example_fail("pthread_create");
	example_begin();
	if (write(gate[1], "gggg", 4) != 4)
		example_fail("write gate");
	for (i = 0; i < 3; i++)
		pthread_join(tid[i], NULL);
	read_byte(ack[0]);
	example_end();
	return 0;
}
