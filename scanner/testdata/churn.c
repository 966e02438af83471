// churn: threads are created and joined in a loop the whole time, so
// threads come and go while the scanner freezes the process. Two blocks
// are printed first: one kept in .bss, one leaked.
#include "common.h"

static void *g_kept;
static volatile void *g_sink;

static void *worker(void *arg) {
	void *p = malloc(64);
	g_sink = p;
	free(p);
	return NULL;
}

static void *spawner(void *arg) {
	for (;;) {
		pthread_t t[4];
		for (int i = 0; i < 4; i++)
			pthread_create(&t[i], NULL, worker, NULL);
		for (int i = 0; i < 4; i++)
			pthread_join(t[i], NULL);
	}
	return NULL;
}

static __attribute__((noinline)) void blocks(void) {
	g_kept = malloc(48);
	report(g_kept, 48, "reach:kept");
	void *leak = malloc(48);
	report(leak, 48, "direct:leak");
}

int main(void) {
	announce("start");
	blocks();
	pthread_t t;
	pthread_create(&t, NULL, spawner, NULL);
	pthread_create(&t, NULL, spawner, NULL);
	scrub();
	announce("ready");
	park(0);
	return 0;
}
