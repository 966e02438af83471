/*
 * realloc_grow: a pointer array grown one slot at a time with realloc, an
 * item allocated for each slot, then the array is dropped. Each move leaves
 * the old, freed array behind with pointers to the items stored so far;
 * freed memory is no root, so the array leaks directly and all 64 items
 * indirectly.
 */
#include "../common.h"

#define ITEMS 64

/* 64 x malloc(24) = 1536 bytes, filled (a reused chunk would otherwise
 * keep the stale pointers of the freed array it once was). */
EX_NOINLINE void *alloc_item(void)
{
	return memset(malloc(24), 'i', 24);
}

/* The array: realloc'ed to 64 pointers = 512 bytes at the end. */
EX_NOINLINE void **grow_array(void **array, int n)
{
	return realloc(array, (size_t)n * sizeof(void *));
}

EX_NOINLINE void grow_and_forget(void)
{
	void **array = NULL;
	int i;

	for (i = 0; i < ITEMS; i++) {
		array = grow_array(array, i + 1);
		array[i] = alloc_item();
	}
}

int main(void)
{
	example_begin();
	example_settle();
	grow_and_forget();
	example_end();
	return 0;
}
