/*
 * growth: the three shapes a daemon's memory takes, for the leak timeline
 * (lsan --record, trends, --only-growing). After the trigger line:
 *
 *   leak_at_startup   allocates 1008 bytes once and loses the pointer: a
 *                     direct leak that never grows (plateau);
 *   cache_store       keeps the last 8 requests' 48-byte entries in a global
 *                     ring, freeing the entry it evicts: a bounded cache,
 *                     reachable, that fills in 8 requests and stays (plateau);
 *   leak_steadily     every request, 80 bytes whose pointer is dropped: the
 *                     one leak that grows (growing).
 *
 * One request every LSAN_EXAMPLE_INTERVAL_MS milliseconds (default 50),
 * LSAN_EXAMPLE_REQUESTS requests (default 40; 0: forever, never "done"),
 * then example_end(). At "done" (40 requests): leaks 40 x 80 bytes from
 * leak_steadily and 1008 from leak_at_startup; outstanding also the
 * cache's 8 x 48 bytes.
 */
#include "../common.h"
#include <time.h>

#define RING 8

static void *cache[RING];
static unsigned cache_next;

static long env_long(const char *name, long def)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return def;
	v = strtol(s, &end, 10);
	if (*end != '\0' || v < 0)
		example_fail("bad number in environment");
	return v;
}

EX_NOINLINE void leak_at_startup(void)
{
	char *config = malloc(1008);

	memset(config, 'c', 1008);
}

EX_NOINLINE void cache_store(unsigned long id)
{
	unsigned slot = cache_next++ % RING;
	unsigned long *e;

	free(cache[slot]);
	e = malloc(48);
	memset(e, 0, 48);
	e[0] = id;
	cache[slot] = e;
}

EX_NOINLINE void leak_steadily(unsigned long id)
{
	unsigned long *lost = malloc(80);

	memset(lost, 0, 80);
	lost[0] = id;
}

EX_NOINLINE void serve(unsigned long requests, long interval_ms)
{
	struct timespec ts;
	unsigned long id;

	ts.tv_sec = interval_ms / 1000;
	ts.tv_nsec = (interval_ms % 1000) * 1000000L;
	for (id = 0; requests == 0 || id < requests; id++) {
		struct timespec left = ts;
		while (nanosleep(&left, &left) != 0 && errno == EINTR)
			;
		cache_store(id);
		leak_steadily(id);
	}
}

int main(void)
{
	long interval = env_long("LSAN_EXAMPLE_INTERVAL_MS", 50);
	long requests = env_long("LSAN_EXAMPLE_REQUESTS", 40);

	example_begin();
	leak_at_startup();
	serve((unsigned long)requests, interval); /* 0: forever */
	example_end();
	return 0;
}
