// Leaks three static calls deep, built -O2 -fomit-frame-pointer by the
// unwinder tests (no frame pointers anywhere, as distributions build).
// Protocol: prints "ready", allocates on a line from stdin, prints "done".
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile keep[8];

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
	static char text[] = "a line\n";
	char *line = NULL;
	size_t cap = 0;
	keep[0] = deep_level1(n);
	FILE *f = fmemopen(text, sizeof(text) - 1, "r");
	if (!f || getline(&line, &cap, f) < 0) // getline's buffer stays
		return 1;
	fclose(f);
	keep[1] = line;
	char *s = NULL;
	if (asprintf(&s, "%d", n) < 0)
		return 1;
	keep[2] = s;
	return 0;
}

int main(int argc, char **argv)
{
	(void)argv;
	setvbuf(stdout, NULL, _IONBF, 0);
	puts("ready");
	char c;
	while (read(0, &c, 1) == 1 && c != '\n') // the "go" line, without stdio's buffer
		;
	int r = run_leaks(argc);
	puts("done");
	(void)!read(0, &c, 1); // not getchar: no stdio buffer
	return r;
}
