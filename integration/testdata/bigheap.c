// bigheap: allocates about 1.5 GiB of pointer-rich blocks after "go", so
// that a leak check takes long enough to be interrupted, then prints
// "done" and waits. Used by TestSecondInterruptAborts.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define BLOCKS 1536
#define BLOCK (1 << 20)

static void **blocks[BLOCKS];

int main(void)
{
	char line[8];

	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		return 1;
	for (int i = 0; i < BLOCKS; i++) {
		blocks[i] = malloc(BLOCK);
		for (size_t j = 0; j < BLOCK / sizeof(void *); j++)
			blocks[i][j] = blocks[(i + j) % (i + 1)];
	}
	printf("done\n");
	fflush(stdout);
	for (;;)
		pause();
}
