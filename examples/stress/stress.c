/*
 * stress: a busy, leak-free, multi-threaded program for lsan's stress test
 * (integration/stress_test.go). Not an example of the expected.json corpus:
 * it never waits for an attach.
 *
 *   - 4 workers churn private pools with malloc, calloc, realloc and free.
 *     Every block holds a pattern derived from its own seed and a checksum
 *     kept beside its pointer; every block is verified before it is freed,
 *     resized (the kept prefix too) or replaced. Some blocks point to others
 *     (each pool keeps a linked chain), so reachability goes through the
 *     heap. A mismatch prints "CORRUPT ..." and exits 99.
 *   - 1 spawner creates and joins short-lived threads all the time; each
 *     gets a malloc'ed argument, allocates and frees on its own, and frees
 *     its argument.
 *   - Every 100 ms the main thread prints "beat N" (N: operations so far).
 *   - SIGUSR1: the leaker leaks exactly LEAKS blocks of LEAK_SIZE bytes from
 *     stress_leak_site() (each pointer dropped), then prints "leaked".
 *   - SIGTERM: workers stop, every pool is verified and freed, "verified N"
 *     is printed and the program exits 0 (LSan, at that exit, finds
 *     nothing).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WORKERS 4
#define SLOTS 512
#define MAX_SIZE 4096
#define LEAKS 3
#define LEAK_SIZE 777

struct block {
	struct block *next; /* chain through the pool */
	uint64_t seed;
	size_t size; /* total bytes, header included */
};

struct slot {
	struct block *b;
	uint64_t sum;
};

struct pool {
	struct slot *slots; /* calloc'ed: the slots live on the heap too */
	struct block *chain;
	uint64_t rng;
};

static struct pool pools[WORKERS];
static atomic_ulong ops;
static atomic_int stopping;
static atomic_int leak_requested;
static pthread_mutex_t chain_lock[WORKERS];

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void corrupt(const char *what, int w, int i)
{
	char msg[128];
	int n = snprintf(msg, sizeof(msg), "CORRUPT %s worker %d slot %d\n", what, w, i);
	if (write(1, msg, (size_t)n) < 0)
		_exit(98);
	_exit(99);
}

/* fill writes the pattern of seed into the payload and returns its sum. */
static uint64_t fill(struct block *b, uint64_t seed, size_t from)
{
	unsigned char *p = (unsigned char *)(b + 1);
	size_t n = b->size - sizeof(*b);
	uint64_t s = seed, sum = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char v = (unsigned char)(next_rand(&s) >> 56);
		if (i >= from)
			p[i] = v;
		sum = sum * 31 + p[i];
	}
	return sum;
}

/* pattern_sum is the checksum of the first n payload bytes of seed's
 * pattern, as fill writes it. */
static uint64_t pattern_sum(uint64_t seed, size_t n)
{
	uint64_t s = seed, sum = 0;
	size_t i;

	for (i = 0; i < n; i++)
		sum = sum * 31 + (unsigned char)(next_rand(&s) >> 56);
	return sum;
}

static uint64_t checksum(const struct block *b)
{
	const unsigned char *p = (const unsigned char *)(b + 1);
	size_t n = b->size - sizeof(*b);
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < n; i++)
		sum = sum * 31 + p[i];
	return sum;
}

static void verify(int w, int i)
{
	struct slot *s = &pools[w].slots[i];
	if (s->b && checksum(s->b) != s->sum)
		corrupt("checksum", w, i);
}

static struct block *new_block(struct pool *p, size_t size)
{
	struct block *b = (next_rand(&p->rng) & 1) ? malloc(size) : calloc(1, size);
	if (!b)
		_exit(97);
	b->size = size;
	b->seed = next_rand(&p->rng);
	b->next = NULL;
	return b;
}

/* unchain removes b from the pool's chain (the chain points into it). */
static void unchain(int w, struct block *b)
{
	struct block **pp;

	pthread_mutex_lock(&chain_lock[w]);
	for (pp = &pools[w].chain; *pp; pp = &(*pp)->next) {
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	}
	pthread_mutex_unlock(&chain_lock[w]);
}

static void chain(int w, struct block *b)
{
	pthread_mutex_lock(&chain_lock[w]);
	b->next = pools[w].chain;
	pools[w].chain = b;
	pthread_mutex_unlock(&chain_lock[w]);
}

/* One operation on a random slot: replace, free or resize its block. */
static void operate(int w)
{
	struct pool *p = &pools[w];
	int i = (int)(next_rand(&p->rng) % SLOTS);
	struct slot *s = &p->slots[i];
	size_t size = sizeof(struct block) + 1 + next_rand(&p->rng) % MAX_SIZE;
	int chained = (next_rand(&p->rng) % 4) == 0;

	verify(w, i);
	if (s->b && (next_rand(&p->rng) & 3) == 0) {
		/* realloc keeps the prefix: verify it after the move */
		struct block *old = s->b;
		size_t keep = old->size < size ? old->size : size;
		uint64_t seed = old->seed;
		unchain(w, old);
		struct block *b = realloc(old, size);
		if (!b)
			_exit(97);
		b->size = size;
		b->next = NULL;
		b->seed = seed;
		/* the kept prefix must have moved intact */
		if (fill(b, seed, keep - sizeof(*b)) != pattern_sum(seed, size - sizeof(*b)))
			corrupt("realloc", w, i);
		s->b = b;
		s->sum = checksum(b);
		if (chained)
			chain(w, b);
		return;
	}
	if (s->b) {
		unchain(w, s->b);
		free(s->b);
		s->b = NULL;
		if (next_rand(&p->rng) & 1)
			return;
	}
	struct block *b = new_block(p, size);
	s->sum = fill(b, b->seed, 0);
	s->b = b;
	if (chained)
		chain(w, b);
}

static void *worker(void *arg)
{
	int w = (int)(intptr_t)arg;

	while (!atomic_load(&stopping)) {
		operate(w);
		atomic_fetch_add(&ops, 1);
	}
	return NULL;
}

static void *short_lived(void *arg)
{
	char *own = malloc(64 + ((uintptr_t)arg & 255));
	memset(own, 1, 64);
	free(own);
	free(arg);
	return NULL;
}

static void *spawner(void *unused)
{
	(void)unused;
	while (!atomic_load(&stopping)) {
		pthread_t t;
		void *arg = malloc(32);
		if (pthread_create(&t, NULL, short_lived, arg) != 0) {
			free(arg);
			continue;
		}
		pthread_join(t, NULL);
	}
	return NULL;
}

/* The one leak site: LEAKS blocks of LEAK_SIZE bytes, pointers dropped. */
__attribute__((noinline)) void stress_leak_site(void)
{
	int i;

	for (i = 0; i < LEAKS; i++) {
		char *volatile p = malloc(LEAK_SIZE);
		memset(p, 0x4c, LEAK_SIZE);
		p = NULL;
	}
}

/* scrub overwrites the dead stack below the caller, where copies of the
 * leaked pointers may remain. */
__attribute__((noinline)) static void scrub(void)
{
	volatile char area[16384];
	memset((char *)area, 0, sizeof(area));
}

/*
 * The leaker allocates once before the spawner starts, so that glibc gives
 * it an arena of its own that no other thread has used. Otherwise it may
 * take an arena a short-lived thread left (glibc hands exited threads'
 * arenas to new threads), and its leaked blocks then sit at addresses the
 * short-lived threads' own blocks had: stale copies of those addresses in
 * uninitialised slots of live frames of the next short-lived thread (which
 * reuses a cached stack) are real references to the leaked block for any
 * conservative scan, LSan's included. Seen: 2 of 3 leaks reported, the
 * third referenced from a short-lived thread's malloc frame.
 */
static atomic_int leaker_ready;

static void *leaker(void *unused)
{
	(void)unused;
	/* Another size than the leaks', so that no leak reuses this block's
	 * address (a stale copy of it would then be a reference). */
	free(malloc(16));
	atomic_store(&leaker_ready, 1);
	while (!atomic_load(&stopping)) {
		if (atomic_exchange(&leak_requested, 0)) {
			stress_leak_site();
			scrub();
			if (write(1, "leaked\n", 7) < 0)
				_exit(98);
		}
		usleep(1000);
	}
	return NULL;
}

static void on_usr1(int sig)
{
	(void)sig;
	atomic_store(&leak_requested, 1);
}

static void on_term(int sig)
{
	(void)sig;
	atomic_store(&stopping, 1);
}

int main(void)
{
	pthread_t threads[WORKERS + 2];
	struct sigaction sa;
	int w, i;

	setvbuf(stdout, NULL, _IONBF, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	for (w = 0; w < WORKERS; w++) {
		pthread_mutex_init(&chain_lock[w], NULL);
		pools[w].slots = calloc(SLOTS, sizeof(struct slot));
		pools[w].rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(w + 1);
		pthread_create(&threads[w], NULL, worker, (void *)(intptr_t)w);
	}
	pthread_create(&threads[WORKERS + 1], NULL, leaker, NULL);
	while (!atomic_load(&leaker_ready))
		usleep(1000);
	pthread_create(&threads[WORKERS], NULL, spawner, NULL);
	printf("ready\n");
	while (!atomic_load(&stopping)) {
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
		printf("beat %lu\n", atomic_load(&ops));
	}
	for (i = 0; i < WORKERS + 2; i++)
		pthread_join(threads[i], NULL);
	for (w = 0; w < WORKERS; w++) {
		for (i = 0; i < SLOTS; i++) {
			verify(w, i);
			free(pools[w].slots[i].b);
		}
		free(pools[w].slots);
	}
	printf("verified %lu\n", atomic_load(&ops));
	return 0;
}
