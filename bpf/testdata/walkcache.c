// One malloc call site reached with the same stack pointer through two
// callers, built -O2 -fomit-frame-pointer by TestUnwindWalkCache: the
// probe's walk cache (bpf/unwind.h) must tell the walks apart by the
// return addresses they found, and replay the ones that repeat.
#include <stdio.h>
#include <stdlib.h>

#define N 64

static void *volatile keep[4 * N];

__attribute__((noinline)) static void *leaf(size_t n)
{
	void *p = malloc(n);
	asm volatile("" ::: "memory"); // no tail call: leaf keeps its frame
	return p;
}

// The same frame under either caller; different code, so that gcc does
// not fold them into one function.
__attribute__((noinline)) static void *via_a(size_t n)
{
	char *p = leaf(n);
	p[0] = 'a';
	return p;
}

__attribute__((noinline)) static void *via_b(size_t n)
{
	char *p = leaf(n);
	p[0] = 'b';
	return p;
}

// N allocations through via_a, freed at once or kept: both from one call
// site, so that the walks are the same.
__attribute__((noinline)) static void through_a(int keep_them, int *k)
{
	for (int i = 0; i < N; i++) {
		void *p = via_a(1000 + *k);
		if (keep_them && *k < 4 * N)
			keep[(*k)++] = p;
		else
			free(p);
	}
}

// Allocations on each line from stdin, then "done": "go" the four runs
// below, "free" N allocations through via_a freed at once, "keep" N
// through via_a kept.
int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	puts("ready");
	char line[16];
	int k = 0;
	while (fgets(line, sizeof(line), stdin)) {
		if (line[0] == 'g') {
			// Sizes say the caller: 1000 + k through via_a, 2000 + k
			// through via_b.
			for (int i = 0; i < N; i++, k++) // alternating: every walk differs from the last
				keep[k] = i & 1 ? via_a(1000 + k) : via_b(2000 + k);
			for (int i = 0; i < N; i++, k++) // repeating: walks to replay
				keep[k] = via_a(1000 + k);
			for (int i = 0; i < N; i++, k++)
				keep[k] = via_b(2000 + k);
			for (int i = 0; i < N; i++, k++)
				keep[k] = i & 1 ? via_b(2000 + k) : via_a(1000 + k);
		} else if (line[0] == 'f' || line[0] == 'k') {
			through_a(line[0] == 'k', &k);
		}
		puts("done");
	}
	return 0;
}
