//go:build ignore

/* manyblocks N [reachable]: allocates N 32-byte blocks (and the array that
 * holds them) and exits: under lsan run, every one is tracked and checked at
 * exit. The array is leaked, and the blocks with it, unless "reachable"
 * keeps it in a global: then every block is reached, and scanned.
 * bench/memory.go measures lsan's own memory with it. */
#include <stdlib.h>
#include <string.h>
void **kept;
int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 1L << 20;
	void **keep = malloc(n * sizeof(void *));
	for (long i = 0; i < n; i++) keep[i] = malloc(32);
	if (argc > 2 && strcmp(argv[2], "reachable") == 0) kept = keep;
	return keep[0] == 0;
}
