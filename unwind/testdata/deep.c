// A leak three static calls deep, built -O2 -fomit-frame-pointer by the
// tests. Each level works after its call (no tail calls) and keeps a stack
// frame of its own size, so that the CFA rules differ between levels.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static char *deep_level3(int n)
{
	char buf[64];
	snprintf(buf, sizeof(buf), "level3 %d", n);
	char *p = strdup(buf);
	p[0] ^= (char)n;
	return p;
}

__attribute__((noinline)) static char *deep_level2(int n)
{
	volatile long pad[8];
	for (int i = 0; i < 8; i++)
		pad[i] = n + i;
	char *p = deep_level3(n + (int)pad[3]);
	p[1] ^= (char)pad[5];
	return p;
}

__attribute__((noinline)) static char *deep_level1(int n)
{
	char *p = deep_level2(n * 3);
	p[2] ^= (char)n;
	return p;
}

__attribute__((noinline)) static int run_leaks(int n)
{
	char *kept = deep_level1(n);
	int c = puts(kept);
	kept = NULL;
	return c;
}

int main(int argc, char **argv)
{
	(void)argv;
	return run_leaks(argc) < 0;
}
