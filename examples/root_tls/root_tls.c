/*
 * root_tls: blocks whose only pointers live in thread-local storage
 * (__thread, static TLS of the executable) are reachable: in the main
 * thread's TLS (.tbss and .tdata) and in the TLS of a second thread that
 * stays alive, parked in read(2), until the process ends. One control leak.
 */
#include "../common.h"
#include <pthread.h>

static __thread void *tls_slots[2];          /* .tbss */
__thread void *tls_init = (void *)1;         /* .tdata */

static int gate[2], ack[2], park[2];

/* main thread: 2 x 72 bytes into .tbss, 1 x 56 bytes into .tdata. */
EX_NOINLINE void keep_in_tls(void)
{
	tls_slots[0] = malloc(72);
	tls_slots[1] = malloc(72);
	tls_init = malloc(56);
}

/* worker thread: 3 x 100 bytes into its own TLS (tls_slots and tls_init). */
EX_NOINLINE void worker_keep_in_tls(void)
{
	tls_slots[0] = malloc(100);
	tls_slots[1] = malloc(100);
	tls_init = malloc(100);
}

/* control: 1 x 48 bytes, dropped. */
EX_NOINLINE void control_leak(void)
{
	char *p = malloc(48);

	memset(p, 'c', 48);
}

static void read_byte(int fd)
{
	char c;

	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
}

static void *worker(void *arg)
{
	(void)arg;
	read_byte(gate[0]);
	worker_keep_in_tls();
	example_scrub_stack();
	if (write(ack[1], "k", 1) != 1)
		example_fail("write ack");
	for (;;)
		read_byte(park[0]); /* nobody writes: parked until the process ends */
	return NULL;
}

int main(void)
{
	pthread_t tid;

	if (pipe(gate) != 0 || pipe(ack) != 0 || pipe(park) != 0)
		example_fail("pipe");
	if (pthread_create(&tid, NULL, worker, NULL) != 0)
		example_fail("pthread_create");
	example_begin();
	keep_in_tls();
	if (write(gate[1], "g", 1) != 1)
		example_fail("write gate");
	read_byte(ack[0]);
	control_leak();
	example_end();
	return 0;
}
