/*
 * mimalloc: the malloc example, run with LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2
 * (see run.ld_preload in expected.json): mimalloc's malloc (an alias of
 * mi_malloc) replaces glibc's.
 */
#include "../malloc/malloc.c"
