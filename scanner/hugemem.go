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
//
// Slices are carved, one after the other, from a mapping reserve made
// for them, while it has room: the arrays of one structure then share a
// mapping, and only its end is rounded up to a huge page (each of which
// counts whole in the process's memory once touched).
type hugeArena struct {
	regions [][]byte
	spare   []byte // what is left of the last reservation
}

const (
	hugePage = 2 << 20
	hugeMin  = 2 << 20 // smaller slices come from the Go heap
	// hugeAlign: carved slices start on a cache line.
	hugeAlign = 64
)

// hugeBytes is what hugeAlloc carves from a reservation for n elements of
// T.
func hugeBytes[T any](n int) int {
	var zero T
	return (int(unsafe.Sizeof(zero))*n + hugeAlign - 1) &^ (hugeAlign - 1)
}

// reserve maps size bytes for the next hugeAllocs to carve their slices
// from (nothing if size is too small to be worth a mapping).
func (a *hugeArena) reserve(size int) {
	if a == nil || size < hugeMin {
		return
	}
	if mem := a.mapHuge(size); mem != nil {
		a.spare = mem
	}
}

// hugeAlloc returns n zeroed elements of T from the arena (a may be nil:
// then from the Go heap).
func hugeAlloc[T any](a *hugeArena, n int) []T {
	size := hugeBytes[T](n)
	if a == nil || n == 0 {
		return make([]T, n)
	}
	var mem []byte
	switch {
	case size <= len(a.spare):
		mem, a.spare = a.spare[:size], a.spare[size:]
	case size >= hugeMin:
		mem = a.mapHuge(size)
	}
	if mem == nil {
		return make([]T, n)
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&mem[0])), n)
}

// mapHuge maps size bytes rounded up to huge pages (nil if mmap fails).
func (a *hugeArena) mapHuge(size int) []byte {
	size = (size + hugePage - 1) &^ (hugePage - 1)
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil
	}
	_ = unix.Madvise(mem, unix.MADV_HUGEPAGE)
	a.regions = append(a.regions, mem)
	return mem
}

// release unmaps everything the arena handed out.
func (a *hugeArena) release() {
	if a == nil {
		return
	}
	for _, r := range a.regions {
		_ = unix.Munmap(r)
	}
	a.regions, a.spare = nil, nil
}
