// A busy program for the in-process recorder: 6 threads churn through
// malloc/realloc/calloc/free and each leaks exactly 5 blocks of 48 bytes
// (thread_leak); a SIGALRM handler, firing every 200 us on whatever
// thread runs, allocates in the middle of those calls and leaks one
// 16-byte block per signal (handler_leak); 20 short-lived threads each
// leak one 96-byte block (short_leak). It prints how many signals ran
// the handler, so a test can expect that many blocks exactly.
//
// The sizes end 8 bytes or more before the next chunk's header: glibc's
// main arena (in libc's data, a root) points at the header of its top
// chunk and of free chunks, which for other sizes lies inside the block
// before (malloc(24) has its next chunk at offset 16) and would keep that
// block reachable, as scanning libc's data does today (not LSan, whose
// allocator is its own).
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define THREADS 6
#define ROUNDS 400000

static volatile sig_atomic_t handled;

__attribute__((noinline)) static void *handler_leak(void) { return malloc(16); }
__attribute__((noinline)) static void *thread_leak(void) { return malloc(48); }
__attribute__((noinline)) static void *short_leak(void) { return malloc(96); }

static void on_alarm(int sig)
{
	(void)sig;
	void *volatile p = handler_leak();
	memset(p, 1, 16);
	p = NULL;
	handled++;
}

static void *churn(void *arg)
{
	unsigned seed = (unsigned)(long)arg;
	void *pool[64] = {0};
	for (int i = 0; i < ROUNDS; i++) {
		int k = rand_r(&seed) % 64;
		switch (rand_r(&seed) % 3) {
		case 0:
			free(pool[k]);
			pool[k] = malloc(1 + rand_r(&seed) % 300);
			break;
		case 1:
			pool[k] = realloc(pool[k], 1 + rand_r(&seed) % 500);
			break;
		default:
			free(pool[k]);
			pool[k] = calloc(1 + rand_r(&seed) % 8, 16);
		}
	}
	for (int k = 0; k < 64; k++)
		free(pool[k]);
	for (int i = 0; i < 5; i++) {
		void *volatile p = thread_leak();
		memset(p, 2, 48);
		p = NULL;
	}
	return NULL;
}

static void *short_lived(void *arg)
{
	(void)arg;
	void *volatile p = short_leak();
	memset(p, 3, 96);
	p = NULL;
	return NULL;
}

// clear_stack overwrites dead stack where leaked pointers may linger.
__attribute__((noinline)) static void clear_stack(void)
{
	volatile char junk[16384];
	memset((char *)junk, 0, sizeof junk);
}

int main(void)
{
	struct sigaction sa = {0};
	sa.sa_handler = on_alarm;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = {{0, 200}, {0, 200}};
	setitimer(ITIMER_REAL, &it, NULL);
	pthread_t t[THREADS];
	for (long i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, churn, (void *)(i + 1));
	for (int i = 0; i < 20; i++) {
		pthread_t s;
		pthread_create(&s, NULL, short_lived, NULL);
		pthread_join(s, NULL);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	struct itimerval off = {0};
	setitimer(ITIMER_REAL, &off, NULL);
	// A signal already pending runs its handler now, before the dead
	// stack it leaves is cleared.
	usleep(2000);
	clear_stack();
	printf("handled %d\n", (int)handled);
	fflush(stdout);
	return 0;
}
