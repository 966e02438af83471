// C++ test program for package symbolize: namespaces, templates and an
// inlined template function. Same protocol as prog.c.
#include <cstdio>

#define NOINLINE __attribute__((noinline))

void *sites[3];

NOINLINE void *record() { return __builtin_return_address(0); }

namespace zoo {

template <typename T>
struct Keeper {
	NOINLINE T store(int slot) {
		sites[slot] = record(); // LINE:store_call
		return T();
	}
};

template <typename T>
static inline void *visit(T *) {
	return record(); // LINE:visit_call
}

NOINLINE void tour(int *p) {
	sites[2] = visit(p); // LINE:tour_call
}

} // namespace zoo

int main() {
	int x = 0;
	zoo::Keeper<int>().store(0);
	zoo::Keeper<zoo::Keeper<int>>().store(1);
	zoo::tour(&x);
	std::printf("store_int %p\n", sites[0]);
	std::printf("store_nested %p\n", sites[1]);
	std::printf("tour %p\n", sites[2]);
	std::printf("ready\n");
	std::fflush(stdout);
	while (std::getchar() != EOF) {
	}
	return 0;
}
