// Holds N pipes, N eventfds, N epoll instances and N sockets: kernel
// objects no user heap shows. A first line on stdin creates them
// ("ready"), a second closes them all ("closed"); EOF ends the program.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 64;
	int *fds = calloc((size_t)n * 5, sizeof(int));
	char line[64];
	if (!fgets(line, sizeof(line), stdin))
		return 0;
	int k = 0;
	for (int i = 0; i < n; i++) {
		if (pipe2(&fds[k], 0) != 0) {
			perror("pipe2");
			return 1;
		}
		k += 2;
	}
	for (int i = 0; i < n; i++)
		fds[k++] = eventfd(0, 0);
	for (int i = 0; i < n; i++)
		fds[k++] = epoll_create1(0);
	for (int i = 0; i < n; i++)
		fds[k++] = socket(AF_INET, SOCK_DGRAM, 0);
	for (int i = 0; i < k; i++) {
		if (fds[i] < 0) {
			perror("create");
			return 1;
		}
	}
	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 0;
	for (int i = 0; i < k; i++)
		close(fds[i]);
	printf("closed\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin))
		;
	return 0;
}
