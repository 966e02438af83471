/*
 * return_copy: a block whose only remaining reference would be a copy lsan's
 * own probe left behind. A uretprobe returns through the kernel's
 * trampoline, which writes the return address, rcx and r11 below the
 * caller's stack pointer; glibc's malloc returns with the block's address in
 * rcx. make_pair's second malloc leaves that copy of the 777-byte block's
 * address in dead stack, and check_while_holding's uninitialised local area
 * then makes that stack live again. The program itself keeps no copy: the
 * pair leaks, 16 bytes directly and 777 indirectly (LSan agrees). lsan
 * probes the allocators' exits instead of their returns, so it plants none.
 */
#include "../common.h"

void *volatile slot;

/*
 * make_pair: 1 x malloc(16) holding 1 x malloc(777), pointers dropped. In
 * assembly, so that nothing of the program's own holds a copy: the
 * pointers go straight to a global, no callee-saved register holds one
 * while malloc runs (malloc would save it in its frame), and before
 * returning it zeroes the dead stack below it, where malloc's frames were
 * -- all but the 24 bytes right under its stack pointer: the return
 * address of the last call, and the two slots where the uretprobe
 * trampoline puts rcx and r11. Uninstrumented, those two hold what malloc
 * pushed there (the caller's callee-saved registers: no heap address).
 */
void make_pair(void);
#if defined(__x86_64__)
__asm__(
	".text\n"
	".globl make_pair\n"
	".type make_pair, @function\n"
	"make_pair:\n"
	"	sub $8, %rsp\n"
	"	mov $16, %edi\n"
	"	call malloc@PLT\n"
	"	mov %rax, slot(%rip)\n"
	"	mov $777, %edi\n"
	"	call malloc@PLT\n"
	"	mov slot(%rip), %rdx\n"
	"	mov %rax, (%rdx)\n"
	"	movq $0, 8(%rdx)\n"
	"	movq $0, slot(%rip)\n"
	"	lea -16384(%rsp), %rdi\n"
	"	mov $16352, %ecx\n"
	"	xor %eax, %eax\n"
	"	cld\n"
	"	rep stosb\n"
	"	xor %edx, %edx\n"
	"	xor %esi, %esi\n"
	"	xor %edi, %edi\n"
	"	xor %r8d, %r8d\n"
	"	xor %r9d, %r9d\n"
	"	xor %r10d, %r10d\n"
	"	xor %r11d, %r11d\n"
	"	add $8, %rsp\n"
	"	ret\n"
	".size make_pair, .-make_pair\n");
#else
void make_pair(void)
{
	slot = malloc(16);
	((void **)slot)[0] = malloc(777);
	((void **)slot)[1] = NULL;
	slot = NULL;
}
#endif

/* The check runs inside this frame: its area, never written, covers the
 * dead stack under make_pair. */
EX_NOINLINE void check_while_holding(void)
{
	volatile char area[8192];

	(void)area;
	example_end();
	exit(0); /* lsan run checks at _exit: this frame is still live then */
}

int main(void)
{
	example_begin();
	make_pair();
	check_while_holding();
	return 0;
}
