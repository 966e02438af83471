// Leaks for the LSan cross-check (crosscheck_test.go): every function leaks
// a distinct size, so a report is matched to its source by size alone.
#include <stdlib.h>
#include <string.h>

void *sink; /* written and cleared to defeat the optimizer */

void leak_in_other_file(void);
void leaky_lib_alloc(void);
void ns_func_leak(void);

static void drop(void *p) { sink = p; sink = 0; }

__attribute__((noinline)) void quokka_direct(void) { drop(malloc(101)); }
__attribute__((noinline)) void foo_foo(void) { drop(malloc(102)); }
__attribute__((noinline)) void abab(void) { drop(malloc(103)); }

static inline __attribute__((always_inline)) void inlined_helper(void) { drop(malloc(106)); }
__attribute__((noinline)) void outer_for_inline(void) { inlined_helper(); }

__attribute__((noinline)) void deep_leaf(void) { drop(malloc(108)); }
__attribute__((noinline)) void deep_mid(void) { deep_leaf(); }
__attribute__((noinline)) void deep_top(void) { deep_mid(); }

__attribute__((noinline)) void order_b(void) { drop(malloc(109)); }
__attribute__((noinline)) void order_a(void) { order_b(); }

__attribute__((noinline)) void dollar$fn(void) { drop(malloc(110)); }

__attribute__((noinline)) void twice(void) { drop(malloc(111)); drop(malloc(111)); }

/* Overwrites the stack below main's frame so that no stale copy of a
   leaked pointer survives there. */
__attribute__((noinline)) static void scrub_stack(void) {
  volatile char buf[16384];
  memset((char *)buf, 0, sizeof buf);
}

int main(void) {
  quokka_direct();
  foo_foo();
  abab();
  leak_in_other_file();
  leaky_lib_alloc();
  outer_for_inline();
  ns_func_leak();
  deep_top();
  order_a();
  dollar$fn();
  twice();
  scrub_stack();
  return 0;
}
