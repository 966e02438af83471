// One malloc call site reached with the same stack pointer through two
// callers, built -O2 -fomit-frame-pointer by TestUnwindWalkCache: the
// probe's walk cache (bpf/unwind.h) must tell the walks apart by the
// return addresses they found, and replay the ones that repeat.
// Protocol: prints "ready", allocates on a line from stdin, prints "done".
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	puts("ready");
	char c;
	while (read(0, &c, 1) == 1 && c != '\n')
		;
	// Sizes say the caller: 1000 + k through via_a, 2000 + k through via_b.
	int k = 0;
	for (int i = 0; i < N; i++, k++) // alternating: every walk differs from the last
		keep[k] = i & 1 ? via_a(1000 + k) : via_b(2000 + k);
	for (int i = 0; i < N; i++, k++) // repeating: walks to replay
		keep[k] = via_a(1000 + k);
	for (int i = 0; i < N; i++, k++)
		keep[k] = via_b(2000 + k);
	for (int i = 0; i < N; i++, k++)
		keep[k] = i & 1 ? via_b(2000 + k) : via_a(1000 + k);
	puts("done");
	(void)!read(0, &c, 1);
	return 0;
}
