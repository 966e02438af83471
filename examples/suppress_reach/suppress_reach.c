/*
 * suppress_reach: a leaked holder (direct) that alone points to a payload
 * allocated elsewhere (indirect). Suppressing the holder's stack must also
 * hide the payload, which is then reachable from a suppressed block, even
 * though no rule names the payload's stack (LSan's suppression rerun).
 */
#include "../common.h"

struct holder {
	char *payload;
	char pad[24];
}; /* 32 bytes */

EX_NOINLINE char *make_payload_elsewhere(void)
{
	char *p = malloc(100);

	memset(p, 'p', 100);
	return p;
}

EX_NOINLINE void make_holder(char *payload)
{
	struct holder *h = malloc(sizeof(*h));

	h->payload = payload;
	memset(h->pad, 'h', sizeof(h->pad));
	/* h goes out of scope: leaked, with the only pointer to payload. */
}

int main(void)
{
	example_begin();
	make_holder(make_payload_elsewhere());
	example_end();
	return 0;
}
