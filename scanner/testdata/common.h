// Helpers shared by the scanner's test programs.
//
// The programs print one line per block ("addr size usable label") and then
// park every thread in a read() whose registers hold nothing but the read's
// arguments, so that the only copies of a pointer are the ones a scenario
// keeps on purpose.
#ifndef LSAN_TEST_COMMON_H
#define LSAN_TEST_COMMON_H

#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t print_mu = PTHREAD_MUTEX_INITIALIZER;

// report prints one block: its address, requested size, usable size and
// the label the test expects (class:name).
static __attribute__((noinline)) void report(void *p, size_t size, const char *label) {
	pthread_mutex_lock(&print_mu);
	printf("%#lx %zu %zu %s\n", (unsigned long)p, size, malloc_usable_size(p), label);
	pthread_mutex_unlock(&print_mu);
}

// scrub zeroes the 64 KiB of stack below the caller, wiping the dead frames
// of everything called so far (printf, malloc, the scenarios).
static __attribute__((noinline)) void scrub(void) {
	volatile char area[64 << 10];
	memset((char *)area, 0, sizeof area);
	__asm__ volatile("" ::"r"(area) : "memory");
}

static char park_buf[64];

// park blocks in read(fd) until EOF. Every scratch and vector register is
// cleared first; the read is a raw syscall so no libc code runs in between.
static __attribute__((noinline)) void park(int fd) {
	long ret;
	do {
		__asm__ volatile(
			"pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\tpxor %%xmm2, %%xmm2\n\tpxor %%xmm3, %%xmm3\n\t"
			"pxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\tpxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\t"
			"pxor %%xmm8, %%xmm8\n\tpxor %%xmm9, %%xmm9\n\tpxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
			"pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\tpxor %%xmm14, %%xmm14\n\tpxor %%xmm15, %%xmm15\n\t"
			"xor %%r8d, %%r8d\n\txor %%r9d, %%r9d\n\txor %%r10d, %%r10d\n\t"
			"syscall"
			: "=a"(ret)
			: "a"(0L), "D"((long)fd), "S"(park_buf), "d"(1L)
			: "rcx", "r8", "r9", "r10", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
			  "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
	} while (ret != 0 && ret != -9 /* EBADF */);
}

// announce prints a marker line and flushes everything printed so far.
static void announce(const char *what) {
	pthread_mutex_lock(&print_mu);
	printf("%s\n", what);
	fflush(stdout);
	pthread_mutex_unlock(&print_mu);
}

#endif
