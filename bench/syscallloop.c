//go:build ignore

// Syscall-heavy loops for lsan kernel's cost: "pipe" bounces one byte
// between two processes over two pipes (a round trip per op), "socket"
// creates and closes a UDP socket per op. Prints the ns per op.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void pingpong(long ops)
{
	int up[2], down[2];
	char c = 'x';
	if (pipe(up) || pipe(down))
		exit(1);
	pid_t child = fork();
	if (child == 0) {
		for (long i = 0; i < ops; i++) {
			if (read(down[0], &c, 1) != 1 || write(up[1], &c, 1) != 1)
				_exit(1);
		}
		_exit(0);
	}
	for (long i = 0; i < ops; i++) {
		if (write(down[1], &c, 1) != 1 || read(up[0], &c, 1) != 1)
			exit(1);
	}
	waitpid(child, NULL, 0);
}

static void sockets(long ops)
{
	for (long i = 0; i < ops; i++) {
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		if (s < 0)
			exit(1);
		close(s);
	}
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	long ops = atol(argv[2]);
	double t0 = now_ns();
	if (strcmp(argv[1], "pipe") == 0)
		pingpong(ops);
	else
		sockets(ops);
	printf("%.1f\n", (now_ns() - t0) / ops);
	return 0;
}
