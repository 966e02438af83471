// Follow-forks test: after the trigger line the parent allocates 100 bytes,
// forks, allocates 50 bytes, waits for the child's byte on a pipe and says
// "done". The child allocates 200 and 300 bytes, frees its copy of the
// 100-byte block, writes the byte and sleeps until killed.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void *volatile keep[4];

int main(void)
{
	int fds[2];
	char c;

	if (pipe(fds))
		return 1;
	printf("ready\n");
	fflush(stdout);
	if (read(0, &c, 1) != 1)
		return 1;
	keep[0] = malloc(100);
	pid_t pid = fork();
	if (pid == 0) {
		keep[1] = malloc(200);
		keep[2] = malloc(300);
		free(keep[0]);
		write(fds[1], "x", 1);
		for (;;)
			pause();
	}
	keep[3] = malloc(50);
	if (read(fds[0], &c, 1) != 1)
		return 1;
	printf("child %d\n", pid);
	printf("done\n");
	fflush(stdout);
	for (;;)
		pause();
}
