/*
 * tcmalloc: the malloc example, run with LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4
 * (see run.ld_preload in expected.json): the allocator is tcmalloc, not glibc's
 * malloc, and glibc's malloc sees no calls at all.
 */
#include "../malloc/malloc.c"
