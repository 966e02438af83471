// A plugin dlopened by dlopen.c after lsan attached: its leak is two
// static calls deep inside it, built -O2 -fomit-frame-pointer.
#include <stdlib.h>
#include <string.h>

static volatile int sink;

__attribute__((noinline)) static char *plugin_inner(int n)
{
	char *p = malloc(40 + n);
	memset(p, 'p', 40 + n);
	return p;
}

__attribute__((noinline)) static char *plugin_outer(int n)
{
	char *p = plugin_inner(n * 2);
	p[1] = (char)n;
	return p;
}

int plugin_leak(int n)
{
	char *p = plugin_outer(n);
	sink += p[0];
	return sink;
}
