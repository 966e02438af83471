// Leaks kernel objects steadily: opens a file every 20 ms and never closes
// it (each open holds a struct file and more). Prints "ready" first.
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("ready\n");
	fflush(stdout);
	for (int i = 0; i < 50000; i++) {
		if (open("/proc/self/stat", O_RDONLY) < 0)
			sleep(1); // out of descriptors: hold what is open
		usleep(20000);
	}
	pause();
	return 0;
}
