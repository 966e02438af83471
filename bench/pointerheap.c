//go:build ignore

/*
 * pointerheap: holds MIB mebibytes of pointer-rich 64 KiB blocks (below
 * glibc's mmap threshold: one heap mapping, as a server's), allocated
 * before it prints "ready" (so untracked by an lsan that attaches after:
 * scanned as roots, every word of it), then sleeps until killed. The
 * snapshot bench checks it with --snapshot stop and fork.
 * pointerheap MIB fork: times the process's own first fork() instead (what
 * the kernel alone costs, the bench's anchor for the fork pause), prints
 * it in ms and exits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double fork_ms(void)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	pid_t child = fork();
	if (child == 0)
		_exit(0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	waitpid(child, NULL, 0);
	return (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
}

#define BLOCK (64 << 10)

int main(int argc, char **argv)
{
	int n = (argc > 1 ? atoi(argv[1]) : 256) * ((1 << 20) / BLOCK);
	void ***blocks = malloc(n * sizeof(*blocks));
	for (int i = 0; i < n; i++) {
		blocks[i] = malloc(BLOCK);
		for (size_t j = 0; j < BLOCK / sizeof(void *); j++)
			blocks[i][j] = blocks[(i + j) % (i + 1)];
	}
	if (argc > 2 && strcmp(argv[2], "fork") == 0) {
		printf("%.3f\n", fork_ms());
		return 0;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
