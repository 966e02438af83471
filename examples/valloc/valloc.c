/* valloc (page-aligned): kept, leaked and freed blocks. The size counted is
 * the requested one, not the page multiple behind it. */
#include "../common.h"
#include <malloc.h>

static void *kept;

/* 1 x valloc(5000), kept. */
EX_NOINLINE void va_keep(void)
{
	kept = valloc(5000);
}

/* 3 x valloc(90), leaked. */
EX_NOINLINE void va_leak(void)
{
	int i;

	for (i = 0; i < 3; i++) {
		char *p = valloc(90);
		memset(p, 'v', 90);
	}
}

/* 2 x valloc(64), freed. */
EX_NOINLINE void va_freed(void)
{
	free(valloc(64));
	free(valloc(64));
}

int main(void)
{
	example_begin();
	va_keep();
	va_leak();
	va_freed();
	example_end();
	return 0;
}
