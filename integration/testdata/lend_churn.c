// Threads that keep changing what they hold while lsan run checks them
// every few tens of milliseconds: each check borrows the recorder's live
// set while the process is stopped and hands it back after the process
// ran on (lsan's report phase). Each of 4 threads, over 600,000 rounds,
// makes a temporary block, replaces one of its 4,096 kept blocks of 32 or
// 48 bytes (freeing the old one, often a block the check borrowed; glibc
// hands its address out again soon), and leaks one 80-byte block every
// 2,000 rounds (1,200 leaked in all, 96,000 bytes). A free the recorder missed while the set
// was lent would make a kept block a leak at exit; an allocation it
// missed would hide one. Kept and leaked blocks are zeroed (calloc): a
// stale pointer glibc left in a reused chunk cannot keep a leak alive.
#include <pthread.h>
#include <stdlib.h>

#define THREADS 4
#define ROUNDS 600000
#define SLOTS 4096

void *kept[THREADS][SLOTS];

__attribute__((noinline)) static void *temporary(size_t n) { return malloc(n); }
__attribute__((noinline)) static void *replace_one(size_t n) { return calloc(1, n); }
__attribute__((noinline)) static void *leak_one(void) { return calloc(1, 80); }

static void *churn(void *arg)
{
	long t = (long)arg;
	unsigned seed = (unsigned)t * 7919u + 1;
	for (long r = 0; r < ROUNDS; r++) {
		void *volatile p = temporary(16 + 16 * (r & 1));
		free(p);
		int i = rand_r(&seed) % SLOTS;
		free(kept[t][i]);
		kept[t][i] = replace_one(32 + 16 * (r & 1));
		if (r % 2000 == 1) {
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
