// Threads making temporary blocks as fast as they can, for the in-process
// recorder's slot reuse: a free of the block its thread allocated last
// takes the record back, and the thread's next allocation writes the same
// ring slot again, unless lsan claimed it first (it does every drain pass,
// racing the thread). Each of 4 threads, over 300,000 rounds of a
// malloc+free pair, keeps one 48-byte block every 1,000 rounds in a global
// (reachable: 1,200 in all) and leaks one 80-byte block every 3,000 rounds,
// allocated right after a retracted pair, in the slot it left (400 leaked,
// 32,000 bytes). Sizes are multiples of 16: the chunk header after such a
// block lies one past its end, where a pointer from the arena to it keeps
// nothing alive.
#include <pthread.h>
#include <stdlib.h>

#define THREADS 4
#define ROUNDS 300000

void *kept[THREADS][ROUNDS / 1000];

__attribute__((noinline)) static void *temporary(size_t n) { return malloc(n); }
__attribute__((noinline)) static void *keep_one(void) { return malloc(48); }
__attribute__((noinline)) static void *leak_one(void) { return malloc(80); }

static void *churn(void *arg)
{
	long t = (long)arg;
	for (long r = 0; r < ROUNDS; r++) {
		void *volatile p = temporary(16 + 16 * (r & 1));
		free(p);
		if (r % 1000 == 0)
			kept[t][r / 1000] = keep_one();
		if (r % 3000 == 1) {
			void *volatile q = leak_one();
			q = NULL;
		}
	}
	return NULL;
}

int main(void)
{
	pthread_t th[THREADS];
	for (long i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, churn, (void *)i);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	return 0;
}
