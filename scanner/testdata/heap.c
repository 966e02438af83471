// heap N SIZE PTRS LEAKED [WINDOW [STRIDE]]: builds a heap of N blocks of
// SIZE bytes for the benchmarks. Each block's first word points to the next block of
// its group, PTRS-1 more words point (at interior offsets) to random blocks
// of its group — any of them, or with WINDOW > 0 one of the WINDOW blocks
// allocated after it (pointer locality) — the other words hold small
// integers. The first N-LEAKED
// blocks are reachable (every STRIDE-th, default 64, from a root array),
// the last LEAKED are dropped. Output: "N\n", then N (addr, size) pairs as 8-byte
// little-endian words, then "ready\n"; then it parks until stdin closes.
#include <sys/mman.h>
#include "common.h"

static void **g_roots;

static unsigned long rnd_state = 88172645463325252UL;
static unsigned long rnd(void) {
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static void fill(void **blocks, size_t from, size_t to, size_t size, size_t ptrs, size_t window) {
	size_t words = size / 8, n = to - from;
	for (size_t i = from; i < to; i++) {
		unsigned long *w = blocks[i];
		w[0] = i + 1 < to ? (unsigned long)blocks[i + 1] : 0;
		for (size_t j = 1; j < words; j++) {
			if (j < ptrs) {
				size_t t = from + rnd() % n;
				if (window)
					t = from + (i - from + 1 + rnd() % window) % n;
				w[j] = (unsigned long)blocks[t] + 8 * (rnd() % words);
			} else {
				w[j] = i * 31 + j;
			}
		}
	}
}

int main(int argc, char **argv) {
	if (argc < 5 || argc > 7) {
		fprintf(stderr, "usage: heap N SIZE PTRS LEAKED [WINDOW [STRIDE]]\n");
		return 2;
	}
	size_t n = strtoul(argv[1], 0, 0), size = strtoul(argv[2], 0, 0);
	size_t ptrs = strtoul(argv[3], 0, 0), leaked = strtoul(argv[4], 0, 0);
	size_t window = argc >= 6 ? strtoul(argv[5], 0, 0) : 0;
	size_t stride = argc >= 7 ? strtoul(argv[6], 0, 0) : 64;
	// The address list lives in an mmap that is unmapped afterwards: a
	// freed heap array would leave stale pointers to every block.
	void **blocks = mmap(NULL, n * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (size_t i = 0; i < n; i++)
		blocks[i] = malloc(size);
	fill(blocks, 0, n - leaked, size, ptrs, window);
	fill(blocks, n - leaked, n, size, ptrs, window);
	size_t nroots = (n - leaked + stride - 1) / stride;
	g_roots = malloc(nroots * 8 + 8);
	for (size_t i = 0; i < nroots; i++)
		g_roots[i] = blocks[i * stride];
	printf("%zu\n", n);
	fflush(stdout);
	unsigned long triple[3 * 4096];
	for (size_t i = 0; i < n;) {
		size_t k = 0;
		for (; k < 4096 && i < n; k++, i++) {
			triple[3 * k] = (unsigned long)blocks[i];
			triple[3 * k + 1] = size;
			triple[3 * k + 2] = malloc_usable_size(blocks[i]);
		}
		fwrite(triple, 24, k, stdout);
	}
	munmap(blocks, n * 8);
	scrub();
	announce("ready");
	park(0);
	return 0;
}
