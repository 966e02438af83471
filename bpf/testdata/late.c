// Waits for "go", then dlopens the plugin named by its argument and
// allocates inside it at once: a stack through code the tracer had no
// rows for when the allocation happened. Built -O2 -fomit-frame-pointer.
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

char *keep; // the plugin's block stays live

__attribute__((noinline)) static int call_plugin(const char *path)
{
	void *h = dlopen(path, RTLD_NOW);
	if (!h) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	char *(*alloc)(int) = (char *(*)(int))dlsym(h, "plugin_alloc");
	keep = alloc(1);
	return 0;
}

int main(int argc, char **argv)
{
	char line[16];
	puts("ready");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin) || argc < 2)
		return 2;
	int r = call_plugin(argv[1]);
	puts("done"); // not a tail call: main stays on the stack
	fflush(stdout);
	fgets(line, sizeof(line), stdin);
	return r;
}
