/*
 * root_stack: blocks whose only pointers are locals of threads that are
 * still alive, parked: one in pthread_cond_wait, one in read(2) on a pipe
 * nobody writes. A live thread's stack (from its stack pointer up) is a
 * root. One control leak.
 */
#include "../common.h"
#include <pthread.h>

static int gate[2], ack[2], park[2];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int never; /* the condition the cond_wait thread waits for */

/* 2 x 144 bytes. */
EX_NOINLINE void *cond_alloc(void)
{
	return malloc(144);
}

/* 1 x 1000 bytes. */
EX_NOINLINE void *pipe_alloc(void)
{
	return malloc(1000);
}

/* control: 1 x 48 bytes, dropped. */
EX_NOINLINE void control_leak(void)
{
	char *p = malloc(48);

	memset(p, 'c', 48);
}

static void read_byte(int fd)
{
	char c;

	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
}

static void *cond_thread(void *arg)
{
	void *volatile held[2];

	(void)arg;
	read_byte(gate[0]);
	held[0] = cond_alloc();
	held[1] = cond_alloc();
	example_scrub_stack();
	if (write(ack[1], "c", 1) != 1)
		example_fail("write ack");
	pthread_mutex_lock(&mu);
	while (!never)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	held[0] = held[1] = NULL;
	return NULL;
}

static void *pipe_thread(void *arg)
{
	void *volatile held;

	(void)arg;
	read_byte(gate[0]);
	held = pipe_alloc();
	example_scrub_stack();
	if (write(ack[1], "p", 1) != 1)
		example_fail("write ack");
	while (held != NULL)
		read_byte(park[0]); /* nobody writes: parked until the process ends */
	return NULL;
}

int main(void)
{
	pthread_t t1, t2;

	if (pipe(gate) != 0 || pipe(ack) != 0 || pipe(park) != 0)
		example_fail("pipe");
	if (pthread_create(&t1, NULL, cond_thread, NULL) != 0 ||
	    pthread_create(&t2, NULL, pipe_thread, NULL) != 0)
		example_fail("pthread_create");
	example_begin();
	if (write(gate[1], "gg", 2) != 2)
		example_fail("write gate");
	read_byte(ack[0]);
	read_byte(ack[0]);
	control_leak();
	example_end();
	return 0;
}
