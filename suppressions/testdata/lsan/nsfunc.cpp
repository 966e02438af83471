// Leaks 107 bytes from a C++ function in a namespace, for "::" patterns.
#include <cstdlib>
extern "C" void *sink;
namespace ns {
__attribute__((noinline)) void func() { sink = std::malloc(107); sink = nullptr; }
}
extern "C" void ns_func_leak() { ns::func(); }
