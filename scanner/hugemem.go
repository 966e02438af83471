package scanner

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugeArena hands out large zeroed slices backed by anonymous memory that
// the kernel is asked to back with huge pages: the index's random
// accesses then miss the TLB far less. The memory is outside the Go heap
// (element types must hold no Go pointers) and is returned all at once by
// release, after which none of the slices may be used. Small slices, and
// any slice when mmap fails, come from the Go heap.
type hugeArena struct {
	regions [][]byte
}

const (
	hugePage = 2 << 20
	hugeMin  = 2 << 20 // smaller slices come from the Go heap
)

// hugeAlloc returns n zeroed elements of T from the arena (a may be nil:
// then from the Go heap).
func hugeAlloc[T any](a *hugeArena, n int) []T {
	var zero T
	size := int(unsafe.Sizeof(zero)) * n
	if a == nil || size < hugeMin {
		return make([]T, n)
	}
	size = (size + hugePage - 1) &^ (hugePage - 1)
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return make([]T, n)
	}
	_ = unix.Madvise(mem, unix.MADV_HUGEPAGE)
	a.regions = append(a.regions, mem)
	return unsafe.Slice((*T)(unsafe.Pointer(&mem[0])), n)
}

// release unmaps everything the arena handed out.
func (a *hugeArena) release() {
	if a == nil {
		return
	}
	for _, r := range a.regions {
		_ = unix.Munmap(r)
	}
	a.regions = nil
}
