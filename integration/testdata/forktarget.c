/*
 * forktarget: a busy target for fork snapshots. Two threads churn
 * malloc/free; the main thread answers one command per stdin line:
 *   "leak"  leaks 3 blocks of 1000 bytes (from leak_thousand) -> "leaked"
 *   "ping"  -> "pong sigchld=N reaped=M" (SIGCHLDs received, children its
 *           waitpid(-1, WNOHANG) polling reaped: both must stay 0 while
 *           lsan forks copies of it)
 * It exits on EOF.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t sigchld;
static volatile int reaped;

static void on_sigchld(int sig) { (void)sig; sigchld++; }

static void *churn(void *arg)
{
	(void)arg;
	void *keep[64] = {0};
	for (unsigned i = 0;; i++) {
		free(keep[i % 64]);
		keep[i % 64] = malloc(16 + i % 500);
		if (i % 1000 == 0) {
			while (waitpid(-1, NULL, WNOHANG) > 0)
				reaped++;
			usleep(100);
		}
	}
	return NULL;
}

__attribute__((noinline)) static void leak_thousand(void)
{
	for (int i = 0; i < 3; i++)
		memset(malloc(1000), 'L', 1000);
}

int main(void)
{
	struct sigaction sa = {.sa_handler = on_sigchld, .sa_flags = SA_RESTART};
	sigaction(SIGCHLD, &sa, NULL);
	pthread_t t;
	for (int i = 0; i < 2; i++)
		pthread_create(&t, NULL, churn, NULL);
	setvbuf(stdout, NULL, _IONBF, 0);
	printf("ready\n");
	char line[64];
	while (fgets(line, sizeof line, stdin)) {
		if (strncmp(line, "leak", 4) == 0) {
			leak_thousand();
			printf("leaked\n");
		} else if (strncmp(line, "ping", 4) == 0) {
			printf("pong sigchld=%d reaped=%d\n", (int)sigchld, reaped);
		}
	}
	return 0;
}
