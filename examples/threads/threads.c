/*
 * threads: 4 threads allocate concurrently, each from its own function with
 * its own count and size, plus malloc/free churn. Everything they keep is
 * stored in globals (no leaks); main joins them before "done".
 *
 * The threads are created before "ready" and wait on a pipe: pthread_create
 * itself allocates (glibc's DTV via calloc in ld.so, kept with the cached
 * stack after join), and those blocks must stay out of the expectations.
 */
#include "../common.h"
#include <pthread.h>

#define ALPHA_N 10
#define BRAVO_N 20
#define CHARLIE_N 30
#define DELTA_N 40

static void *alpha_blocks[ALPHA_N];
static void *bravo_blocks[BRAVO_N];
static void *charlie_blocks[CHARLIE_N];
static void *delta_blocks[DELTA_N];
static int gate[2];

static void churn(int n, size_t size)
{
	int i;

	for (i = 0; i < n; i++) {
		char *p = malloc(size);
		p[0] = 1;
		free(p);
	}
}

/* 10 x malloc(16) = 160 bytes. */
EX_NOINLINE void alpha_alloc(void)
{
	int i;

	for (i = 0; i < ALPHA_N; i++)
		alpha_blocks[i] = malloc(16);
}

/* 20 x calloc(1, 48) = 960 bytes. */
EX_NOINLINE void bravo_alloc(void)
{
	int i;

	for (i = 0; i < BRAVO_N; i++)
		bravo_blocks[i] = calloc(1, 48);
}

/* 30 x malloc(100) = 3000 bytes. */
EX_NOINLINE void charlie_alloc(void)
{
	int i;

	for (i = 0; i < CHARLIE_N; i++)
		charlie_blocks[i] = malloc(100);
}

/* 40 x malloc(8) = 320 bytes, then 40 x realloc to 24 = 960 bytes. */
EX_NOINLINE void delta_alloc(void)
{
	int i;

	for (i = 0; i < DELTA_N; i++)
		delta_blocks[i] = malloc(8);
	for (i = 0; i < DELTA_N; i++) {
		void *q = realloc(delta_blocks[i], 24);
		if (q == NULL)
			example_fail("realloc failed");
		delta_blocks[i] = q;
	}
}

static void wait_gate(void)
{
	char c;

	while (read(gate[0], &c, 1) < 0 && errno == EINTR)
		;
}

static void *thread_main(void *arg)
{
	void (*work)(void) = (void (*)(void))arg;

	wait_gate();
	churn(500, 40);
	work();
	churn(500, 72);
	example_scrub_stack();
	return NULL;
}

int main(void)
{
	void (*work[4])(void) = {alpha_alloc, bravo_alloc, charlie_alloc, delta_alloc};
	pthread_t tid[4];
	int i;

	if (pipe(gate) != 0)
		example_fail("pipe");
	for (i = 0; i < 4; i++)
		if (pthread_create(&tid[i], NULL, thread_main, (void *)work[i]) != 0)
			example_fail("pthread_create");
	example_begin();
	if (write(gate[1], "gogo", 4) != 4)
		example_fail("write gate");
	for (i = 0; i < 4; i++)
		pthread_join(tid[i], NULL);
	example_end();
	return 0;
}
