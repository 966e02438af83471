// A malloc/free loop, for the per-process filter test: it is NOT the
// target, so the tracer must never see its calls.
#include <stdio.h>
#include <stdlib.h>
int main(void)
{
	for (long i = 0; i < 200000; i++) {
		void *volatile p = malloc(32);
		free(p);
	}
	printf("spun\n");
	return 0;
}
