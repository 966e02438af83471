//go:build ignore

// mallocloop.c's protocol, with stacks of 4 to 36 frames that change from
// one allocation to the next (two recursions of random depths, frames of
// several sizes): the probe's walk cache rarely answers, so this measures
// the CFI walk itself (bench -deep).
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static unsigned long seed = 1;

static unsigned rnd(void)
{
	seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
	return seed >> 33;
}

__attribute__((noinline)) static void *leaf(size_t n)
{
	void *p = malloc(n);
	asm volatile("" ::: "memory");
	return p;
}

__attribute__((noinline)) static void *inner(int d, size_t n)
{
	volatile char pad[24 + (d & 3) * 16];
	pad[0] = d;
	void *p = d ? inner(d - 1, n) : leaf(n);
	asm volatile("" ::: "memory");
	return (char *)p + pad[0] * 0;
}

__attribute__((noinline)) static void *outer(int d, size_t n)
{
	void *p = d ? outer(d - 1, n) : inner(rnd() % 8, n);
	asm volatile("" ::: "memory");
	return p;
}

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
		void *volatile p = outer(rnd() % 24, 16 + (i & 63));
		free(p);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	printf("%.2f\n", ns / n);
	return 0;
}
