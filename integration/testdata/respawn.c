/*
 * respawn: a master that keeps one worker alive, as nginx or a pre-fork
 * server does. It prints "worker PID" for each worker it forks, and
 * respawns one that dies. On a "leak" line on stdin it sends SIGUSR1 to the
 * current worker, which leaks 3 blocks of 700 bytes (from worker_leak) and
 * prints "leaked". Only the worker allocates after startup.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t leak_requested;

static void on_usr1(int sig) { (void)sig; leak_requested = 1; }

__attribute__((noinline)) static void worker_leak(void)
{
	for (int i = 0; i < 3; i++)
		memset(malloc(700), 'w', 700);
}

static void worker(void)
{
	signal(SIGUSR1, on_usr1);
	for (;;) {
		pause();
		if (leak_requested) {
			leak_requested = 0;
			worker_leak();
			printf("leaked\n");
		}
	}
}

static pid_t spawn(void)
{
	pid_t pid = fork();
	if (pid == 0)
		worker();
	printf("worker %d\n", pid);
	return pid;
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	pid_t w = spawn();
	char line[16];
	for (;;) {
		/* Respawn a dead worker, then serve one command. */
		int status;
		if (waitpid(w, &status, WNOHANG) == w)
			w = spawn();
		fd_set fds;
		FD_ZERO(&fds);
		FD_SET(0, &fds);
		struct timeval tv = {0, 100000};
		if (select(1, &fds, NULL, NULL, &tv) <= 0)
			continue;
		if (!fgets(line, sizeof line, stdin))
			return 0;
		if (strncmp(line, "leak", 4) == 0)
			kill(w, SIGUSR1);
	}
}
