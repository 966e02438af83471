// leaks: one process holding blocks in every way the scanner must see (or
// must not see). Each block is printed as "addr size usable class:name";
// class "pre" marks blocks the test leaves out of the snapshot, as if they
// had been allocated before lsan attached. Then "ready", and every thread
// parks until stdin is closed.
#include <sys/mman.h>
#include "common.h"

struct node {
	struct node *next;
	char payload[24];
};

// Roots in every kind of writable memory.
static void *g_bss;            // .bss
void *g_data = (void *)0x1;    // .data (initialized)
static __thread void *t_main;  // the main thread's static TLS
static char *g_interior17;     // interior pointers
static char *g_interior80;
static char *g_slack;          // points into the slack past the requested size
static void *g_slack_holder;   // a block holding a pointer in its slack
static void *g_pre;            // a pre-attach block holding a pointer
static char *g_big;            // a 16 MiB mmapped block
static void *volatile g_reg_src;  // handed to the register thread, then cleared
static void *volatile g_xmm_src;  // handed to the xmm thread, then cleared
static char g_reg_buf[8];

static __attribute__((noinline)) void direct_leaks(void) {
	void *p = malloc(40);
	report(p, 40, "direct:plain");
	p = calloc(3, 100);
	report(p, 300, "direct:calloc");
}

static __attribute__((noinline)) void dropped_list(void) {
	struct node *head = NULL;
	struct node *nodes[5];
	for (int i = 4; i >= 0; i--) {
		struct node *n = malloc(sizeof *n);
		n->next = head;
		head = n;
		nodes[i] = n;
	}
	report(nodes[0], sizeof(struct node), "direct:list_head");
	for (int i = 1; i < 5; i++)
		report(nodes[i], sizeof(struct node), "indirect:list_tail");
	memset(nodes, 0, sizeof nodes);
}

static __attribute__((noinline)) void leaked_cycles(void) {
	struct node *a = malloc(sizeof *a), *b = malloc(sizeof *b);
	a->next = b;
	b->next = a;
	report(a, sizeof *a, "indirect:cycle2");
	report(b, sizeof *b, "indirect:cycle2");
	struct node *x = malloc(sizeof *x), *y = malloc(sizeof *y), *z = malloc(sizeof *z);
	x->next = y;
	y->next = z;
	z->next = x;
	report(x, sizeof *x, "indirect:cycle3");
	report(y, sizeof *y, "indirect:cycle3");
	report(z, sizeof *z, "indirect:cycle3");
	// A block pointing only to itself is still a direct leak.
	struct node *self = malloc(sizeof *self);
	self->next = self;
	report(self, sizeof *self, "direct:self");
}

static __attribute__((noinline)) void global_roots(void) {
	g_bss = malloc(24);
	report(g_bss, 24, "reach:bss");
	g_data = malloc(32);
	report(g_data, 32, "reach:data");
	t_main = malloc(48);
	report(t_main, 48, "reach:tls_main");
	// A reachable block keeps what it points to reachable.
	struct node *n = malloc(sizeof *n);
	n->next = malloc(sizeof *n);
	((struct node *)g_bss)->next = n;
	report(n, sizeof *n, "reach:via_bss_block");
	report(n->next, sizeof *n, "reach:via_bss_block2");
}

static __attribute__((noinline)) void interior_pointers(void) {
	char *p = malloc(100);
	g_interior17 = p + 17;
	report(p, 100, "reach:interior17");
	p = malloc(200);
	g_interior80 = p + 80;
	report(p, 200, "reach:interior80");
}

static __attribute__((noinline)) void slack(void) {
	// A pointer into [requested, usable): reachable by default (programs
	// use the bytes up to malloc_usable_size), not with ExactBounds.
	char *p = malloc(20);
	size_t u = malloc_usable_size(p);
	if (u < 22) {
		fprintf(stderr, "usable %zu < 22\n", u);
		exit(2);
	}
	g_slack = p + 21;
	report(p, 20, "slackref:into_slack");
	// A pointer stored past the requested size, within the usable size:
	// the holder is scanned over its usable size.
	size_t req = 0;
	char *h = NULL;
	for (size_t r = 1; r <= 64 && !h; r++) {
		char *c = malloc(r);
		size_t off = (r + 7) & ~(size_t)7;
		if (off + 8 <= malloc_usable_size(c)) {
			h = c;
			req = r;
		} else {
			free(c);
		}
	}
	if (!h) {
		fprintf(stderr, "no block with room past the request\n");
		exit(2);
	}
	void *target = malloc(32);
	*(void **)(h + ((req + 7) & ~(size_t)7)) = target;
	g_slack_holder = h;
	report(h, req, "reach:slack_holder");
	report(target, 32, "reach:stored_in_slack");
}

static __attribute__((noinline)) void pre_attach(void) {
	// Blocks the tracer would not know: memory allocated before attach is
	// a root, so what it points to is reachable.
	void **pre = malloc(64);
	pre[3] = malloc(32);
	g_pre = pre;
	report(pre, 64, "pre:kept");
	report(pre[3], 32, "reach:from_pre_kept");
	void **lost = malloc(64);  // itself unreferenced, but untracked
	lost[5] = malloc(32);
	report(lost, 64, "pre:lost");
	report(lost[5], 32, "reach:from_pre_lost");
}

static __attribute__((noinline)) void large_blocks(void) {
	g_big = malloc(16 << 20);
	report(g_big, 16 << 20, "reach:big");
	void *s1 = malloc(40);
	memcpy(g_big + (8 << 20), &s1, sizeof s1);
	report(s1, 40, "reach:in_big");
	char *big2 = malloc(16 << 20);
	report(big2, 16 << 20, "direct:big");
	void *s2 = malloc(40);
	memcpy(big2 + (4 << 20), &s2, sizeof s2);
	report(s2, 40, "indirect:in_big");
}

static __attribute__((noinline)) void freed_neighbours(void) {
	// A leaked block followed by a free chunk: malloc's bins point to the
	// free chunk's header, which is the leaked block's last usable word.
	void *leak = malloc(40);
	void *gap = malloc(2000);  // too big for tcache: goes to a bin
	void *guard = malloc(40);
	report(leak, 40, "direct:before_free_chunk");
	free(gap);
	report(guard, 40, "direct:after_free_chunk");
	// Freed blocks are simply absent from the snapshot.
	void *f = malloc(48);
	free(f);
}

static __attribute__((noinline)) void sparse_mapping(void) {
	// A 4 GiB anonymous mapping with one touched page, which holds the
	// only pointer to a block: the scanner reads that page and skips the
	// rest (pagemap).
	size_t size = (size_t)4 << 30;
	char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	void *p = malloc(40);
	memcpy(m + ((size_t)3 << 30) + 64, &p, sizeof p);
	report(p, 40, "reach:in_sparse_mapping");
}

// Threads.

static pthread_barrier_t ready;

static void *stack_thread(void *arg) {
	void *volatile local = malloc(56);
	report((void *)local, 56, "reach:thread_stack");
	pthread_barrier_wait(&ready);
	scrub();
	park(0);
	return (void *)local;
}

static __thread void *t_thread;

static void *tls_thread(void *arg) {
	t_thread = malloc(72);
	report(t_thread, 72, "reach:thread_tls");
	pthread_barrier_wait(&ready);
	scrub();
	park(0);
	return NULL;
}

static __attribute__((noinline)) void bury(void) {
	// The pointer lands 16 KiB below this thread's live frames: dead stack.
	volatile void *area[2048];
	area[0] = malloc(88);
	report((void *)area[0], 88, "direct:dead_stack");
	__asm__ volatile("" ::"r"(area) : "memory");
}

static void *dead_stack_thread(void *arg) {
	bury();
	pthread_barrier_wait(&ready);
	park(0);
	return NULL;
}

// The pointer lives only in r12 while the thread blocks in read().
static void *register_thread(void *arg) {
	long ret;
	__asm__ volatile(
		"mov g_reg_src(%%rip), %%r12\n\t"
		"movq $0, g_reg_src(%%rip)\n\t"
		"1:\n\t"
		"xor %%eax, %%eax\n\t"
		"xor %%edi, %%edi\n\t"
		"lea g_reg_buf(%%rip), %%rsi\n\t"
		"mov $1, %%edx\n\t"
		"syscall\n\t"
		"cmp $1, %%rax\n\t"
		"je 1b\n\t"
		"cmp $-4, %%rax\n\t"
		"je 1b\n\t"
		"xor %%r12d, %%r12d\n\t"
		: "=a"(ret)
		:
		: "rdi", "rsi", "rdx", "rcx", "r11", "r12", "memory");
	return NULL;
}

// The pointer lives only in xmm8 while the thread blocks in read().
static void *xmm_thread(void *arg) {
	long ret;
	__asm__ volatile(
		"movq g_xmm_src(%%rip), %%xmm8\n\t"
		"movq $0, g_xmm_src(%%rip)\n\t"
		"1:\n\t"
		"xor %%eax, %%eax\n\t"
		"xor %%edi, %%edi\n\t"
		"lea g_reg_buf(%%rip), %%rsi\n\t"
		"mov $1, %%edx\n\t"
		"syscall\n\t"
		"cmp $1, %%rax\n\t"
		"je 1b\n\t"
		"cmp $-4, %%rax\n\t"
		"je 1b\n\t"
		"pxor %%xmm8, %%xmm8\n\t"
		: "=a"(ret)
		:
		: "rdi", "rsi", "rdx", "rcx", "r11", "xmm8", "memory");
	return NULL;
}

static __attribute__((noinline)) void start_threads(void) {
	pthread_t t;
	pthread_barrier_init(&ready, NULL, 4);
	pthread_create(&t, NULL, stack_thread, NULL);
	pthread_create(&t, NULL, tls_thread, NULL);
	pthread_create(&t, NULL, dead_stack_thread, NULL);
	pthread_barrier_wait(&ready);

	g_reg_src = malloc(64);
	report(g_reg_src, 64, "reach:register");
	pthread_create(&t, NULL, register_thread, NULL);
	while (g_reg_src)
		usleep(1000);

	g_xmm_src = malloc(64);
	report(g_xmm_src, 64, "reach:xmm_register");
	pthread_create(&t, NULL, xmm_thread, NULL);
	while (g_xmm_src)
		usleep(1000);
}

static __attribute__((noinline)) void bury_main(void) {
	volatile void *area[4096];
	area[0] = malloc(104);
	report((void *)area[0], 104, "direct:main_dead_stack");
	__asm__ volatile("" ::"r"(area) : "memory");
}

int main(void) {
	printf("pid %d\n", getpid());
	announce("start");  // allocates stdout's buffer before any block
	start_threads();
	direct_leaks();
	dropped_list();
	leaked_cycles();
	global_roots();
	interior_pointers();
	slack();
	pre_attach();
	large_blocks();
	freed_neighbours();
	sparse_mapping();
	// The last block before the top chunk: malloc's top pointer is its
	// last usable word.
	void *last = malloc(40);
	report(last, 40, "direct:before_top");
	last = NULL;
	scrub();
	bury_main();
	announce("ready");
	park(0);
	return 0;
}
