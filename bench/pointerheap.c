//go:build ignore

/*
 * pointerheap: holds MIB mebibytes of pointer-rich 64 KiB blocks (below
 * glibc's mmap threshold: one heap mapping, as a server's), allocated
 * before it prints "ready" (so untracked by an lsan that attaches after:
 * scanned as roots, every word of it), then sleeps until killed. The
 * snapshot bench checks it with --snapshot stop and fork.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();
}
