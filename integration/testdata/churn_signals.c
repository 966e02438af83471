// A busy program for the in-process recorder: 6 threads churn through the
// allocator and each leaks exactly 5 blocks of 48 bytes (thread_leak); a
// SIGALRM handler, firing every 200 us, allocates in the middle of the
// churn of three of them and leaks one 16-byte block per signal
// (handler_leak); 20 short-lived threads each leak one 96-byte block
// (short_leak). It prints how many signals ran the handler, so a test can
// expect that many blocks exactly.
//
// glibc's malloc is not async-signal-safe: a handler that allocates while
// the code it interrupted holds its arena's lock waits for that lock
// forever (seen: a hang once in a few runs). So the handler runs only on
// the three "signalled" threads, and only once they are warmed up: they
// churn with malloc/free pairs of sizes whose tcache bins never empty nor
// fill, served without the lock, and the handler's 16-byte class is one
// they never touch. The other three churn through malloc, realloc, calloc
// and free with SIGALRM blocked.
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

// Handlers run on several threads at once (the signal is blocked only in
// the thread running it): the count is an atomic add, or it loses some.
static int handled;

__attribute__((noinline)) static void *handler_leak(void) { return malloc(16); }
__attribute__((noinline)) static void *thread_leak(void) { return malloc(48); }
__attribute__((noinline)) static void *short_leak(void) { return malloc(96); }

static void on_alarm(int sig)
{
	(void)sig;
	void *volatile p = handler_leak();
	memset(p, 1, 16);
	p = NULL;
	__atomic_fetch_add(&handled, 1, __ATOMIC_RELAXED);
}

static void block_alarm(int how)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(how, &set, NULL);
}

// churn_any goes through malloc, realloc, calloc and free (SIGALRM
// blocked: any of them may take the arena lock).
static void churn_any(unsigned seed)
{
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
}

// churn_signalled frees a block and allocates one of the same class at
// once, so each class's tcache bin holds at most one chunk: every call
// after the first of each class is served without the arena lock, and
// the handler may run in any of them (inside the recorder's record too).
static void churn_signalled(unsigned seed)
{
	static const size_t sizes[] = {40, 72, 104, 200, 296}; // never the handler's 16
	void *pool[5];
	for (int c = 0; c < 5; c++) {
		pool[c] = malloc(sizes[c]);
		free(pool[c]);
		pool[c] = malloc(sizes[c]);
	}
	block_alarm(SIG_UNBLOCK);
	for (int i = 0; i < ROUNDS; i++) {
		int c = rand_r(&seed) % 5;
		free(pool[c]);
		pool[c] = malloc(sizes[c]);
	}
	block_alarm(SIG_BLOCK);
	for (int c = 0; c < 5; c++)
		free(pool[c]);
}

static void *churn(void *arg)
{
	long i = (long)arg;
	if (i % 2)
		churn_signalled((unsigned)i);
	else
		churn_any((unsigned)i);
	for (int j = 0; j < 5; j++) {
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
	// Every thread starts with SIGALRM blocked (it inherits this mask);
	// the signalled churners unblock it once warmed up.
	block_alarm(SIG_BLOCK);
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
	clear_stack();
	printf("handled %d\n", __atomic_load_n(&handled, __ATOMIC_RELAXED));
	fflush(stdout);
	return 0;
}
