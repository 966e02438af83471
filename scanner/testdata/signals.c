// signals: the main thread spins while a real-time signal is sent to it
// again and again; real-time signals queue, so the handler's count must
// equal the number sent. On EOF on stdin it prints the count.
#include <signal.h>
#include "common.h"

#define SIG 40

static volatile long received;

static void on_signal(int sig) { received++; }

static void *reader(void *arg) {
	char c;
	while (read(0, &c, 1) > 0) {
	}
	printf("received %ld\n", received);
	fflush(stdout);
	_exit(0);
}

int main(void) {
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIG);
	// The reader thread blocks the signal: only the main thread gets it.
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_t t;
	pthread_create(&t, NULL, reader, NULL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigaction(SIG, &sa, NULL);
	announce("ready");
	volatile unsigned long spin = 0;
	for (;;)
		spin++;
}
