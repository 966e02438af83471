// counter: prints an increasing counter every 2 ms until stdin is closed.
// A stopped process prints nothing: the test reads the counter to see it
// run.
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static void *eof_exits(void *arg) {
	char c;
	while (read(0, &c, 1) > 0) {
	}
	_exit(0);
}

int main(void) {
	pthread_t t;
	pthread_create(&t, NULL, eof_exits, NULL);
	printf("ready\n");
	fflush(stdout);
	struct timespec ts = {0, 2 * 1000 * 1000};
	for (unsigned long n = 0;; n++) {
		printf("%lu\n", n);
		fflush(stdout);
		nanosleep(&ts, NULL);
	}
}
