// C++ leaks for the unwinder tests, built -O2 -fomit-frame-pointer:
// through a class template, inlined STL containers, and a catch handler
// (the frame after an exception was unwound). Each leak's pointer is
// dropped.
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

static volatile int sink;

struct Widget {
	int v;
	char tag[24];
	explicit Widget(int n) : v(n) { std::snprintf(tag, sizeof(tag), "widget %d", n); }
};

template <typename T> struct Registry {
	std::vector<T *> items;
	__attribute__((noinline)) void add(int n) { items.push_back(new T(n)); }
};

__attribute__((noinline)) static std::map<int, std::string> *build_map(int n)
{
	auto *m = new std::map<int, std::string>;
	for (int i = 0; i < n; i++)
		(*m)[i] = std::string(40 + i, 'x');
	return m;
}

__attribute__((noinline)) static void parse_or_throw(int n)
{
	if (n > 0)
		throw std::runtime_error("parse error: this message is long enough to be on the heap");
}

__attribute__((noinline)) static int *recover_after_throw(int n)
{
	try {
		parse_or_throw(n);
	} catch (const std::exception &e) {
		int *p = new int[16];
		p[0] = (int)std::strlen(e.what());
		return p;
	}
	return nullptr;
}

__attribute__((noinline)) static void run_leaks(int n)
{
	auto *r = new Registry<Widget>;
	r->add(n);
	r->add(n + 1);
	sink += r->items[0]->v;
	auto *m = build_map(n + 2);
	sink += (int)m->size();
	int *p = recover_after_throw(n);
	sink += p[0];
}

__attribute__((noinline)) static void scrub()
{
	volatile char buf[8192];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = 0;
}

int main(int argc, char **)
{
	run_leaks(argc);
	scrub();
	return 0;
}
