/*
 * new_array0: new T[0] of a type with a destructor allocates just the array
 * cookie (8 bytes holding the count, 0) and returns the address past it,
 * one past the end of the block. LSan takes that pointer as a reference
 * (IsSpecialCaseOfOperatorNew0): the kept array is no leak, the forgotten
 * one is.
 */
#include "../common.h"

static volatile int destroyed;

struct Tracked {
	int id;
	~Tracked() { destroyed++; }
};

static Tracked *kept;

extern "C" EX_NOINLINE void keep_empty_array(void)
{
	kept = new Tracked[0];
}

extern "C" EX_NOINLINE void leak_empty_array(void)
{
	Tracked *lost = new Tracked[0];
	(void)lost;
}

int main(void)
{
	example_begin();
	keep_empty_array();
	leak_empty_array();
	example_end();
	return 0;
}
