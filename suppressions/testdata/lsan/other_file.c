// Leaks 104 bytes from a second source file, for file patterns.
#include <stdlib.h>
extern void *sink;
__attribute__((noinline)) void leak_in_other_file(void) { sink = malloc(104); sink = 0; }
