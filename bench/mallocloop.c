//go:build ignore

// A malloc-heavy loop: N malloc+free pairs, timed inside the process so
// that process start and attach are not counted. Waits for a line on
// stdin first, so a tracer can attach before the loop starts.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

__attribute__((noinline)) static void *alloc(size_t n) { return malloc(n); }

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	char line[8];
	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		return 1;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		void *volatile p = alloc(16 + (i & 63));
		free(p);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	printf("%.2f\n", ns / n);
	return 0;
}
