//go:build ignore

/* attachblocks N [reachable]: says "ready" and waits for a line on stdin
 * (lsan -p attaches meanwhile), allocates N 32-byte blocks and the array
 * that holds them, says "done" and waits for another line (or the end of
 * stdin) before exiting.
 * The array is leaked, and the blocks with it, unless "reachable" keeps it
 * in a global. Nothing else holds it: the filling frame is gone and its
 * stack overwritten. bench/memory.go measures lsan -p's own memory with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
void **kept;
__attribute__((noinline)) static void fill(long n, int reachable) {
	void **volatile keep = malloc(n * sizeof(void *));
	for (long i = 0; i < n; i++) keep[i] = malloc(32);
	if (reachable) kept = keep;
	keep = NULL;
}
__attribute__((noinline)) static void scrub(void) {
	volatile char a[8192];
	memset((char *)a, 0, sizeof a);
}
int main(int argc, char **argv) {
	long n = argc > 1 ? atol(argv[1]) : 1L << 20;
	char line[8];
	setvbuf(stdout, NULL, _IONBF, 0);
	puts("ready");
	if (!fgets(line, sizeof line, stdin)) return 1;
	fill(n, argc > 2 && strcmp(argv[2], "reachable") == 0);
	scrub();
	puts("done");
	(void)!fgets(line, sizeof line, stdin); /* a line or the end of stdin */
	return 0;
}
