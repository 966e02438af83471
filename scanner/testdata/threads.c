// threads N: N threads, each holding one block on its stack and parked in
// read(); the main thread leaks one block.
#include "common.h"

static pthread_barrier_t ready;

static void *holder(void *arg) {
	void *volatile p = malloc(32);
	report((void *)p, 32, "reach:thread_stack");
	pthread_barrier_wait(&ready);
	scrub();
	park(0);
	return (void *)p;
}

static __attribute__((noinline)) void leak(void) {
	void *p = malloc(40);
	report(p, 40, "direct:leak");
}

int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 10;
	announce("start");
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 128 << 10);
	pthread_barrier_init(&ready, NULL, n + 1);
	for (int i = 0; i < n; i++) {
		pthread_t t;
		int err = pthread_create(&t, &attr, holder, NULL);
		if (err) {
			fprintf(stderr, "pthread_create %d: %s\n", i, strerror(err));
			exit(2);
		}
	}
	pthread_barrier_wait(&ready);
	leak();
	scrub();
	announce("ready");
	park(0);
	return 0;
}
