// Loads a plugin with dlopen after lsan attached (lsan run attaches before
// main) and leaks inside it at once: lsan run's processes stop at the
// dynamic linker's hook until the plugin's unwind rows are loaded. Built
// -O2 -fomit-frame-pointer.
#include <dlfcn.h>
#include <stdio.h>

__attribute__((noinline)) static int call_plugin(const char *path)
{
	void *h = dlopen(path, RTLD_NOW);
	if (!h) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	int (*leak)(int) = (int (*)(int))dlsym(h, "plugin_leak");
	return leak(3) < 0;
}

int main(int argc, char **argv)
{
	int r = argc > 1 ? call_plugin(argv[1]) : 2;
	puts("done"); // not a tail call: main stays on the stack
	return r;
}
