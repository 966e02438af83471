// Loads a plugin with dlopen after lsan attached (lsan run attaches before
// main), waits 300 ms (the unwinder polls mappings every 100 ms), then leaks
// inside it. Built -O2 -fomit-frame-pointer.
#include <dlfcn.h>
#include <stdio.h>
#include <time.h>

__attribute__((noinline)) static int call_plugin(const char *path)
{
	void *h = dlopen(path, RTLD_NOW);
	if (!h) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	int (*leak)(int) = (int (*)(int))dlsym(h, "plugin_leak");
	struct timespec ts = {0, 300 * 1000 * 1000};
	nanosleep(&ts, NULL);
	return leak(3) < 0;
}

int main(int argc, char **argv)
{
	int r = argc > 1 ? call_plugin(argv[1]) : 2;
	puts("done"); // not a tail call: main stays on the stack
	return r;
}
