// Leaks three static calls deep and inside libc (strdup, getline,
// asprintf), for the unwinder tests: built -O2 -fomit-frame-pointer (and
// -static), as distributions build. With the argument "wait" it follows
// the ready/line/done protocol, for attach mode.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile int sink;

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

// Each leak's pointer is dropped: only its stack says where it came from.
__attribute__((noinline)) static void run_leaks(int n)
{
	static char text[] = "a line\n";
	char *p = deep_level1(n);
	sink += p[0];
	char *line = NULL;
	size_t cap = 0;
	FILE *f = fmemopen(text, sizeof(text) - 1, "r");
	if (f && getline(&line, &cap, f) > 0)
		sink += line[0];
	if (f)
		fclose(f);
	char *s = NULL;
	if (asprintf(&s, "%d", n) > 0)
		sink += s[0];
}

// scrub overwrites the dead stack below main's frame, so that no stale
// copy of a leaked pointer there keeps it reachable.
__attribute__((noinline)) static void scrub(void)
{
	volatile char buf[8192];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = 0;
}

int main(int argc, char **argv)
{
	int wait = argc > 1 && strcmp(argv[1], "wait") == 0;
	// linger: leak at once, then say "done" and wait for a line (an
	// attached lsan's exec test: the leaks follow the execve at once).
	int linger = argc > 1 && strcmp(argv[1], "linger") == 0;
	char c;
	if (wait) {
		setvbuf(stdout, NULL, _IONBF, 0);
		puts("ready");
		while (read(0, &c, 1) == 1 && c != '\n')
			;
	}
	run_leaks(argc);
	scrub();
	if (wait || linger) {
		setvbuf(stdout, NULL, _IONBF, 0);
		puts("done");
		(void)!read(0, &c, 1);
	}
	return 0;
}
