// Loads a plugin with dlopen after lsan attached (lsan run attaches before
// main) and leaks inside it at once: lsan run's processes stop at the
// dynamic linker's hook until the plugin's unwind rows are loaded; an
// attached process does not stop, and a stack walked before the rows are
// in is walked again by lsan. Built -O2 -fomit-frame-pointer. With a
// second argument "wait" it follows the ready/line/done protocol, for
// attach mode, and waits for another line before it exits.
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

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
	char line[16];
	int wait = argc > 2 && strcmp(argv[2], "wait") == 0;
	if (wait) {
		puts("ready");
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			return 2;
	}
	int r = argc > 1 ? call_plugin(argv[1]) : 2;
	puts("done"); // not a tail call: main stays on the stack
	if (wait) {
		fflush(stdout);
		fgets(line, sizeof(line), stdin);
	}
	return r;
}
