/*
 * rewriter MIB: holds MIB MiB of heap, every word a pointer into it (so a
 * check scans all of it), and rewrites one word of every page of it in a
 * loop from a second thread: after a fork snapshot, each of its pages is
 * copied as soon as the loop reaches it. Prints "ready" once the heap is
 * built; the line it reads on stdin ends it.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHUNK (1 << 20)

static uintptr_t **chunks;
static long nchunks;
static volatile int stop;

static void *rewrite(void *unused)
{
	(void)unused;
	for (uint64_t round = 0; !stop; round++)
		for (long c = 0; c < nchunks; c++)
			for (long w = 0; w < CHUNK / 8; w += 4096 / 8)
				chunks[c][w] = (uintptr_t)&chunks[c][(w + round) % (CHUNK / 8)];
	return NULL;
}

int main(int argc, char **argv)
{
	nchunks = argc > 1 ? atol(argv[1]) : 256;
	chunks = malloc(nchunks * sizeof *chunks);
	for (long c = 0; c < nchunks; c++) {
		chunks[c] = malloc(CHUNK);
		for (long w = 0; w < CHUNK / 8; w++)
			chunks[c][w] = (uintptr_t)&chunks[c][(w * 7) % (CHUNK / 8)];
	}
	pthread_t t;
	pthread_create(&t, NULL, rewrite, NULL);
	printf("ready\n");
	fflush(stdout);
	char line[8];
	if (!fgets(line, sizeof line, stdin))
		return 1;
	stop = 1;
	pthread_join(t, NULL);
	return 0;
}
