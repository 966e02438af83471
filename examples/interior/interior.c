/*
 * interior: blocks referenced only by pointers into their middle are
 * reachable: 17 bytes in, 80 bytes in, at the last byte, and from inside
 * another reachable block. A pointer one past the requested end does not
 * count: that block is a direct leak (even though glibc's usable size, and
 * LSan's size class, extend past the requested 90 bytes).
 */
#include "../common.h"

static char *at17;       /* malloc(100) + 17 */
static char *at80;       /* malloc(200) + 80 */
static char *at_last;    /* malloc(64) + 63 */
static char *past_end;   /* malloc(90) + 90 */
static char **holder;    /* malloc(16): holds malloc(48) + 24 */

EX_NOINLINE void keep_interior(void)
{
	char *p = malloc(100);
	char *q = malloc(200);

	at17 = p + 17;
	at80 = q + 80;
}

EX_NOINLINE void keep_last_byte(void)
{
	char *r = malloc(64);

	at_last = r + 63;
}

/* holder (16 bytes) is kept; the 48-byte block is referenced only by an
 * interior pointer stored in holder. */
EX_NOINLINE void keep_via_heap(void)
{
	char *inner;

	holder = malloc(16);
	inner = malloc(48);
	holder[0] = inner + 24;
	holder[1] = NULL;
}

EX_NOINLINE void one_past_end(void)
{
	char *s = malloc(90);

	memset(s, 'e', 90);
	past_end = s + 90;
}

int main(void)
{
	example_begin();
	keep_interior();
	keep_last_byte();
	keep_via_heap();
	one_past_end();
	example_end();
	return 0;
}
