/* A shared library whose constructor leaks one 48-byte block and keeps a
 * 16-byte one: it runs before main, and before the program's entry point. */
#include <stdlib.h>
#include <string.h>

void *lib_kept;

__attribute__((noinline)) void lib_ctor_leak(void)
{
	char *p = malloc(48);

	memset(p, 1, 48);
}

__attribute__((constructor)) static void lib_init(void)
{
	lib_kept = malloc(16);
	lib_ctor_leak();
}

int lib_fn(void)
{
	return 1;
}
