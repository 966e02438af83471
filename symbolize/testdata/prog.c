// Test program for package symbolize. It records the addresses of known
// code locations, prints them, then waits for its standard input to close
// so that the test can snapshot and symbolize the live process.
//
// Lines the test checks are marked "LINE:name"; the test finds them here.
#include <stdio.h>
#include <stdlib.h>
#ifndef STATIC
#include <dlfcn.h>
#endif

#define NOINLINE __attribute__((noinline))

void *direct_site, *inlined_site;

// record returns its return address: a PC in its caller, just after the
// call instruction.
NOINLINE void *record(void) {
	return __builtin_return_address(0);
}

NOINLINE void quokka_direct(void) { // LINE:direct_entry
	direct_site = record(); // LINE:direct_call
}

// Inlined into quokka_outer when optimizing; a function of its own at -O0.
static inline void *wombat_inline(void) {
	return record(); // LINE:inline_call
}

NOINLINE void quokka_outer(void) {
	inlined_site = wombat_inline(); // LINE:outer_call
}

static void *malloc_address(void) {
#ifdef STATIC
	return (void *)&malloc;
#else
	// Not &malloc: in a non-PIE executable that is the PLT stub.
	return dlsym(RTLD_DEFAULT, "malloc");
#endif
}

int main(void) {
	quokka_direct();
	quokka_outer();
	printf("direct_site %p\n", direct_site);
	printf("inlined_site %p\n", inlined_site);
	printf("direct_entry %p\n", (void *)&quokka_direct);
	printf("malloc %p\n", malloc_address());
	printf("ready\n");
	fflush(stdout);
	while (getchar() != EOF) {
	}
	return 0;
}
