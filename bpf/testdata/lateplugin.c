// A plugin that late.c dlopens after the tracer attached; its allocation
// is two static calls deep inside it. Built -O2 -fomit-frame-pointer.
#include <stdlib.h>
#include <string.h>

static volatile int sink;

__attribute__((noinline)) static char *plugin_inner(int n)
{
	char *p = malloc(4242 + n);
	memset(p, 'p', 4242 + n);
	return p;
}

__attribute__((noinline)) static char *plugin_outer(int n)
{
	char *p = plugin_inner(n - 1);
	p[1] = (char)n;
	return p;
}

char *plugin_alloc(int n)
{
	char *p = plugin_outer(n);
	sink += p[0];
	return p;
}
