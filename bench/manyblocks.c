//go:build ignore

/* manyblocks N: allocates N 32-byte blocks (and the array that holds
 * them) and exits: under lsan run, every one is tracked and checked at exit.
 * bench/memory.go measures lsan's own memory with it. */
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 1L << 20;
	void **keep = malloc(n * sizeof(void *));
	for (long i = 0; i < n; i++) keep[i] = malloc(32);
	return keep[0] == 0;
}
