/*
 * root_register: a block whose only pointer is in a register of a live
 * thread. The thread calls reg_alloc() from inline assembly, moves the
 * result into r12 (callee-saved, so every function it calls afterwards
 * preserves it), scrubs the dead stack below it, tells main it is ready and
 * then issues the read(2) syscall directly, blocking on a pipe nobody writes.
 * No memory holds a copy of the pointer: only the thread's saved r12 (what
 * PTRACE_GETREGS returns) keeps the block alive. One control leak.
 */
#include "../common.h"
#include <pthread.h>

#if !defined(__x86_64__)
#error "root_register uses x86-64 inline assembly"
#endif

static int gate[2], ack[2], park[2];

/* 1 x 512 bytes; called from the inline assembly in reg_thread. */
__attribute__((used)) EX_NOINLINE void *reg_alloc(void)
{
	char *p = malloc(512);

	memset(p, 'r', 512);
	return p;
}

__attribute__((used)) EX_NOINLINE void reg_scrub(void)
{
	example_scrub_stack();
}

__attribute__((used)) EX_NOINLINE void reg_ready(void)
{
	if (write(ack[1], "r", 1) != 1)
		example_fail("write ack");
}

/* control: 1 x 48 bytes, dropped. */
EX_NOINLINE void control_leak(void)
{
	char *p = malloc(48);

	memset(p, 'c', 48);
}

static void read_byte(int fd)
{
	char c;

	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
}

static void *reg_thread(void *arg)
{
	char buf;

	(void)arg;
	read_byte(gate[0]);
	/* The compiler keeps %rsp 16-byte aligned in the body of this
	 * (non-leaf, -O0) function, so calls from here follow the ABI. */
	__asm__ volatile(
		"call reg_alloc\n\t"
		"mov %%rax, %%r12\n\t"
		"xor %%eax, %%eax\n\t"
		"call reg_scrub\n\t"
		"call reg_ready\n\t"
#ifdef ROOT_REGISTER_NEGATIVE
		"xor %%r12d, %%r12d\n\t" /* test of the test: now the block leaks */
#endif
		"1:\n\t"
		"mov $0, %%eax\n\t"      /* SYS_read */
		"mov %[fd], %%edi\n\t"
		"lea %[buf], %%rsi\n\t"
		"mov $1, %%edx\n\t"
		"syscall\n\t"
		"cmp $-4, %%rax\n\t"     /* -EINTR: read again */
		"je 1b\n\t"
		"xor %%r12d, %%r12d\n\t"
		:
		: [fd] "m"(park[0]), [buf] "m"(buf)
		: "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
		  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
		  "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
		  "memory", "cc");
	return NULL;
}

int main(void)
{
	pthread_t tid;

	if (pipe(gate) != 0 || pipe(ack) != 0 || pipe(park) != 0)
		example_fail("pipe");
	if (pthread_create(&tid, NULL, reg_thread, NULL) != 0)
		example_fail("pthread_create");
	example_begin();
	if (write(gate[1], "g", 1) != 1)
		example_fail("write gate");
	read_byte(ack[0]);
	control_leak();
	example_end();
	return 0;
}
