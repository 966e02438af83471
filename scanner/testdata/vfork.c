// vfork: the main thread vforks; the child says "ready" (by then the
// parent is suspended) and sleeps for argv[1] milliseconds before
// exiting; until then the parent waits in the kernel, where a ptrace
// interrupt cannot stop it. Then the parent counts on stdout until stdin
// is closed.
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void *eof_exits(void *arg) {
	char c;
	while (read(0, &c, 1) > 0) {
	}
	_exit(0);
}

int main(int argc, char **argv) {
	long ms = argc > 1 ? atol(argv[1]) : 1000;
	pthread_t t;
	pthread_create(&t, NULL, eof_exits, NULL);
	pid_t pid = vfork();
	if (pid == 0) {
		syscall(SYS_write, 1, "ready\n", 6);
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
		syscall(SYS_nanosleep, &ts, NULL);
		_exit(0);
	}
	struct timespec tick = {0, 2 * 1000 * 1000};
	for (unsigned long n = 0;; n++) {
		printf("%lu\n", n);
		fflush(stdout);
		nanosleep(&tick, NULL);
	}
}
