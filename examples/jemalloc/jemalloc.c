/*
 * jemalloc: the malloc example, run with LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
 * (see run.ld_preload in expected.json): the allocator is jemalloc, not glibc's
 * malloc, and glibc's malloc sees no calls at all.
 */
#include "../malloc/malloc.c"
