// Built as libleaky.so: leaks 105 bytes from a shared library, for module patterns.
#include <stdlib.h>
extern void *sink;
__attribute__((noinline)) void leaky_lib_alloc(void) { sink = malloc(105); sink = 0; }
