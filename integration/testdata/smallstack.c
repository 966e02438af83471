// A thread created with the smallest stack POSIX allows (PTHREAD_STACK_MIN)
// leaks one 40-byte block. Static TLS comes out of each thread's stack, so
// a preloaded library with large TLS makes such a thread impossible
// (pthread_create fails with EINVAL) and changes what the program does.
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static void small_stack_leak(void)
{
	void *volatile p = malloc(40);
	memset(p, 1, 40);
	p = NULL;
}

static void *run(void *unused)
{
	(void)unused;
	small_stack_leak();
	return NULL;
}

int main(void)
{
	pthread_attr_t attr;
	pthread_t t;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, PTHREAD_STACK_MIN);
	int err = pthread_create(&t, &attr, run, NULL);
	if (err == 0)
		pthread_join(t, NULL);
	printf("pthread_create: %d\n", err);
	return 0;
}
