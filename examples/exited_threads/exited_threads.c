/*
 * exited_threads: 100 threads, created and joined one after the other, each
 * given a malloc'ed argument that nobody frees. glibc keeps the stack of a
 * joined thread cached for the next one, its struct pthread (pd->arg: the
 * argument) and its dead frames intact; that memory belongs to no live
 * thread and is no root (LSan scans live threads only): all 100 arguments
 * leak.
 *
 * One thread runs before "ready": the first pthread_create allocates the
 * thread's DTV (calloc in ld.so) and the stack that is then cached and
 * reused, and those stay out of the expectations.
 */
#include "../common.h"
#include <pthread.h>

#define THREADS 100
#define ARG_SIZE 48

static void *worker(void *arg)
{
	if (arg)
		memset(arg, 0x5a, ARG_SIZE);
	return NULL;
}

static void run_one(void *arg)
{
	pthread_t t;

	if (pthread_create(&t, NULL, worker, arg) != 0)
		example_fail("pthread_create");
	if (pthread_join(t, NULL) != 0)
		example_fail("pthread_join");
}

/* 100 x malloc(48) = 4800 bytes, each handed to a thread and forgotten. */
EX_NOINLINE void spawn_leaking_threads(void)
{
	int i;

	for (i = 0; i < THREADS; i++)
		run_one(malloc(ARG_SIZE));
}

int main(void)
{
	run_one(NULL);
	example_begin();
	spawn_leaking_threads();
	example_end();
	return 0;
}
