/*
 * return_copy_new: return_copy with C++'s operator new and new[], whose
 * exits lie in libstdc++ (new's throwing path is a separate .cold part of
 * the function; new[] is only a tail jump into new). A uretprobe on either
 * leaves the result in dead stack (see return_copy); lsan probes their exits.
 * make_new_pair: 1 x new(16) holding 1 x new[](777), pointers dropped. The
 * pair leaks, 16 bytes directly and 777 indirectly (LSan agrees).
 */
#include "../common.h"
#include <new>

extern "C" {
void *volatile new_slot;
void make_new_pair(void);
void check_while_holding_new(void);
}

#if defined(__x86_64__)
/* In assembly for the reasons given in return_copy.c: no copy of the
 * pointers of the program's own, and the dead stack below zeroed but for
 * the 24 bytes right under the stack pointer, where the uretprobe
 * trampoline would put the return address, rcx and r11. */
__asm__(
	".text\n"
	".globl make_new_pair\n"
	".type make_new_pair, @function\n"
	"make_new_pair:\n"
	"	sub $8, %rsp\n"
	"	mov $16, %edi\n"
	"	call _Znwm@PLT\n"
	"	mov %rax, new_slot(%rip)\n"
	"	mov $777, %edi\n"
	"	call _Znam@PLT\n"
	"	mov new_slot(%rip), %rdx\n"
	"	mov %rax, (%rdx)\n"
	"	movq $0, 8(%rdx)\n"
	"	movq $0, new_slot(%rip)\n"
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
	".size make_new_pair, .-make_new_pair\n");
#else
void make_new_pair(void)
{
	void **pair = static_cast<void **>(::operator new(16));
	pair[0] = new char[777];
	pair[1] = nullptr;
	new_slot = pair;
	new_slot = nullptr;
}
#endif

/* The check runs inside this frame: its area, never written, covers the
 * dead stack under make_new_pair. */
EX_NOINLINE void check_while_holding_new(void)
{
	volatile char area[8192];

	(void)area;
	example_end();
	exit(0); /* lsan run checks at _exit: this frame is still live then */
}

int main(void)
{
	example_begin();
	make_new_pair();
	check_while_holding_new();
	return 0;
}
