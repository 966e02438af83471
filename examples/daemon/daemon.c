/*
 * daemon: a toy server for the README demo. After the trigger line it serves
 * one "request" every LSAN_EXAMPLE_INTERVAL_MS milliseconds (default 200):
 *
 *   handle_request  allocates a 256-byte request buffer (freed at the end),
 *                   calls parse_header, and every 5th request stores a
 *                   32-byte session (new_session) in a 4-slot global ring,
 *                   freeing the session it evicts;
 *   parse_header    copies the header into a 64-byte block and frees it,
 *                   except on every 10th request, where an early return
 *                   forgets to: a 64-byte direct leak.
 *
 * Protocol: the usual one. "ready", trigger line, LSAN_EXAMPLE_REQUESTS
 * requests (default 20: 4 s at the default pace), then example_end() ("done",
 * and pause() with LSAN_EXAMPLE_DAEMON). At "done": 2 leaks of 64 bytes from
 * parse_header and 4 kept sessions, whatever the interval (run.env sets 10 ms
 * to make tests fast).
 * LSAN_EXAMPLE_REQUESTS=0 serves forever and never prints "done": the README
 * demo, one more 64-byte leak every 10 requests (every 2 s by default) while
 * the sessions stay at 4 blocks.
 */
#include "../common.h"
#include <time.h>

#define RING 4

static void *sessions[RING];
static unsigned session_next;

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

EX_NOINLINE void *new_session(unsigned long id)
{
	unsigned long *s = malloc(32);

	memset(s, 0, 32);
	s[0] = id;
	return s;
}

/* Returns 0 when the header is valid. Leaks its copy on every 10th request. */
EX_NOINLINE int parse_header(const char *req, unsigned long id)
{
	char *hdr = malloc(64);

	memcpy(hdr, req, 63);
	hdr[63] = '\0';
	if (id % 10 == 9)
		return -1; /* "malformed header": the early return forgets free(hdr) */
	free(hdr);
	return 0;
}

EX_NOINLINE void handle_request(unsigned long id)
{
	char *req = malloc(256);

	memset(req, 'h', 255);
	req[255] = '\0';
	parse_header(req, id);
	if (id % 5 == 4) {
		unsigned slot = session_next++ % RING;
		free(sessions[slot]);
		sessions[slot] = new_session(id);
	}
	free(req);
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
		handle_request(id);
	}
}

int main(void)
{
	long interval = env_long("LSAN_EXAMPLE_INTERVAL_MS", 200);
	long requests = env_long("LSAN_EXAMPLE_REQUESTS", 20);

	example_begin();
	serve((unsigned long)requests, interval); /* 0: forever */
	example_end();
	return 0;
}
