/*
 * root_data: blocks whose only pointers live in .data (initialized,
 * writable globals) are reachable. One control leak.
 */
#include "../common.h"

/* Non-zero initializers put these in .data, not .bss. */
static void *data_slots[3] = {(void *)1, (void *)2, (void *)3};
struct config {
	const char *name;
	int version;
	void *blob;
} data_config = {"example", 7, (void *)4};

/* 3 x 200 bytes into data_slots. */
EX_NOINLINE void keep_in_data(void)
{
	int i;

	for (i = 0; i < 3; i++)
		data_slots[i] = malloc(200);
}

/* 1 x 1024 bytes into a struct field in .data. */
EX_NOINLINE void keep_in_config(void)
{
	data_config.blob = calloc(1, 1024);
}

/* control: 1 x 48 bytes, dropped. */
EX_NOINLINE void control_leak(void)
{
	char *p = malloc(48);

	memset(p, 'c', 48);
}

int main(void)
{
	example_begin();
	keep_in_data();
	keep_in_config();
	control_leak();
	example_end();
	return 0;
}
