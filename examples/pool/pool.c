/*
 * pool: a pool allocator on top of mmap, which no malloc probe sees. Run
 * with --alloc-fn pool_alloc:2 --free-fn pool_free:2 (run.lsan_args in
 * expected.json): its objects are tracked, scanned and reported like
 * malloc's, with pool_alloc's caller. The pool functions are static: lsan
 * finds them in .symtab. LeakSanitizer knows nothing of the pool, so
 * expected.json is the program's own bookkeeping.
 */
#include "../common.h"
#include <sys/mman.h>

#define SLOT 64
#define SLOTS 1024

/* A free slot holds the next free slot: freed objects keep pointers to
 * each other, which must not keep anything alive. */
struct slot {
	struct slot *next;
};

/* The pool's first slot is its header: objects start at the second, so
 * that the pool's own pointer to its memory is not a pointer to an
 * object. */
struct pool {
	char *base;
	size_t used;
	struct slot *free_list;
};

static struct pool the_pool;
static void *kept[3];

static EX_NOINLINE void pool_init(struct pool *p)
{
	p->base = mmap(NULL, SLOT * SLOTS, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p->base == MAP_FAILED)
		_exit(1);
	memcpy(p->base, "pool header", 12);
	p->used = 1;
}

static EX_NOINLINE void *pool_alloc(struct pool *p, size_t size)
{
	if (size > SLOT)
		return NULL;
	if (p->free_list) {
		struct slot *s = p->free_list;
		p->free_list = s->next;
		return s;
	}
	if (p->used == SLOTS)
		return NULL;
	return p->base + SLOT * p->used++;
}

static EX_NOINLINE void pool_free(struct pool *p, void *obj)
{
	struct slot *s = obj;
	s->next = p->free_list;
	p->free_list = s;
}

/* 5 x 40 bytes, leaked. */
EX_NOINLINE void leak_pool_objects(void)
{
	for (int i = 0; i < 5; i++)
		memset(pool_alloc(&the_pool, 40), 'p', 40);
}

/* Two 24-byte nodes, the first pointing to the second, leaked: one
 * direct and one indirect leak. */
EX_NOINLINE void leak_pool_list(void)
{
	void **head = pool_alloc(&the_pool, 24);
	void **tail = pool_alloc(&the_pool, 24);
	memset(tail, 0, 24);
	memset(head, 0, 24);
	head[0] = tail;
}

/* 20 objects allocated and freed again: nothing left. */
EX_NOINLINE void churn(void)
{
	void *objs[20];
	for (int i = 0; i < 20; i++)
		objs[i] = pool_alloc(&the_pool, 56);
	for (int i = 0; i < 20; i++)
		pool_free(&the_pool, objs[i]);
	memset(objs, 0, sizeof(objs));
}

/* 3 x 64 bytes kept in a global. */
EX_NOINLINE void keep_some(void)
{
	for (int i = 0; i < 3; i++)
		kept[i] = pool_alloc(&the_pool, 64);
}

int main(void)
{
	pool_init(&the_pool);
	example_begin();
	leak_pool_objects();
	leak_pool_list();
	churn();
	keep_some();
	example_end();
	return 0;
}
