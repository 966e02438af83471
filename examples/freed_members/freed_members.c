/*
 * freed_members: a struct is freed without freeing the two strings it
 * points to. The freed chunk still holds both pointers (glibc overwrites
 * only its first 16 bytes with free-list links), but freed memory is no
 * root: both members leak, 10 times over.
 */
#include "../common.h"

struct record {
	char header[40]; /* beyond the free-list links glibc writes */
	char *name;
	char *value;
};

EX_NOINLINE struct record *alloc_record(void)
{
	return calloc(1, sizeof(struct record));
}

/* 10 x malloc(24) = 240 bytes, filled: a string leaves no stale data. */
EX_NOINLINE char *alloc_name(void)
{
	return memset(malloc(24), 'n', 24);
}

/* 10 x malloc(56) = 560 bytes, filled. */
EX_NOINLINE char *alloc_value(void)
{
	return memset(malloc(56), 'v', 56);
}

EX_NOINLINE void forget_members(void)
{
	int i;

	for (i = 0; i < 10; i++) {
		struct record *r = alloc_record();
		r->name = alloc_name();
		r->value = alloc_value();
		free(r);
	}
}

int main(void)
{
	example_begin();
	example_settle();
	forget_members();
	example_end();
	return 0;
}
