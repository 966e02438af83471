/* direct_loop: direct leaks made in loops: every block's pointer is
 * overwritten by the next iteration, nothing references any of them. */
#include "../common.h"

/* 12 x 60 bytes = 720 bytes, leaked. */
EX_NOINLINE void leak_records(void)
{
	int i;

	for (i = 0; i < 12; i++) {
		char *p = malloc(60);
		memset(p, 'r', 60);
	}
}

/* 5 x 45 bytes = 225 bytes, leaked (odd size: not a multiple of 8 or 16). */
EX_NOINLINE void leak_strings(void)
{
	int i;

	for (i = 0; i < 5; i++) {
		char *p = malloc(45);
		memset(p, 's', 44);
		p[44] = '\0';
	}
}

int main(void)
{
	example_begin();
	leak_records();
	leak_strings();
	example_end();
	return 0;
}
