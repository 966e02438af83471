/*
 * cxx_new: C++ operator new in all its forms. Every new-expression is in an
 * extern "C" function, so the allocating function's name is the same for
 * every symbolizer; that function (the caller of operator new), not
 * operator new and not malloc underneath it, is the one in the expectations.
 *
 * Sizes: Point 12 bytes, Node 32, Aligned 128 (alignas(64): aligned new),
 * Tracked 16 with a destructor, so new Tracked[n] asks for 16 * n + 8 bytes
 * (the 8-byte array cookie holding n) and returns a pointer 8 bytes into the
 * block.
 */
#include "../common.h"
#include <new>

struct Point {
	int x, y, z;
};

struct Node {
	Node *next;
	long a, b, c;
};

struct alignas(64) Aligned {
	char data[128];
};

struct Tracked {
	long id;
	long value;
	~Tracked() { id = 0; }
};

static Point *points[5];
static Aligned *aligned_one[2];
static Aligned *aligned_many;
static Tracked *tracked;

extern "C" {

/* 5 x new Point = 5 x 12 bytes, kept. */
EX_NOINLINE void make_objects(void)
{
	for (int i = 0; i < 5; i++)
		points[i] = new Point{i, i, i};
}

/* 2 x new int[100] = 2 x 400 bytes, leaked. */
EX_NOINLINE void make_arrays(void)
{
	for (int i = 0; i < 2; i++) {
		int *a = new int[100];
		a[0] = i;
	}
}

/* nothrow forms, all leaked: 3 x new Node (32), new char[60], and one aligned
 * nothrow new Aligned (128): 5 blocks, 284 bytes. */
EX_NOINLINE void make_nothrow(void)
{
	for (int i = 0; i < 3; i++) {
		Node *n = new (std::nothrow) Node{nullptr, i, i, i};
		n->a = 1;
	}
	char *c = new (std::nothrow) char[60];
	c[0] = 'c';
	Aligned *a = new (std::nothrow) Aligned;
	a->data[0] = 'a';
}

/* aligned new: 2 x new Aligned (128) and new Aligned[3] (384), kept. */
EX_NOINLINE void make_aligned(void)
{
	for (int i = 0; i < 2; i++)
		aligned_one[i] = new Aligned;
	aligned_many = new Aligned[3];
}

/* 1 x new Aligned (128), leaked. */
EX_NOINLINE void leak_aligned(void)
{
	Aligned *a = new Aligned;
	a->data[0] = 'x';
}

/* new Tracked[4]: one 72-byte block (64 + 8-byte cookie); the program keeps
 * only the pointer new[] returned, 8 bytes into the block. Kept. */
EX_NOINLINE void make_cookie(void)
{
	tracked = new Tracked[4];
	tracked[3].value = 3;
}

/* Everything here is deleted again: sized delete, delete[], aligned delete,
 * delete[] with a cookie, nothrow new + delete. */
EX_NOINLINE void delete_some(void)
{
	Point *p = new Point{1, 2, 3};
	delete p;
	int *a = new int[10];
	delete[] a;
	Tracked *t = new Tracked[2];
	delete[] t;
	Aligned *al = new Aligned;
	delete al;
	Aligned *am = new Aligned[2];
	delete[] am;
	Node *n = new (std::nothrow) Node{nullptr, 0, 0, 0};
	delete n;
	char *c = new (std::nothrow) char[7];
	delete[] c;
}

} /* extern "C" */

int main(void)
{
	example_begin();
	make_objects();
	make_arrays();
	make_nothrow();
	make_aligned();
	leak_aligned();
	make_cookie();
	delete_some();
	example_end();
	return 0;
}
