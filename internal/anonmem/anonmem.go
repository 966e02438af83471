// Package anonmem keeps large arrays of lsan's own (a check's set of
// blocks, the in-process recorder's live set) in anonymous mappings of
// their own instead of the Go heap: unmapping gives their memory back at
// once, where the Go heap would keep it resident as garbage until a later
// collection, and a fresh mapping is touched only as it fills, where the
// Go heap zeroes a large allocation that reuses its pages all at once.
// Element types must hold no Go pointers.
package anonmem

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Map returns n zeroed elements of T in a mapping of their own, and the
// mapping, which Unmap returns.
func Map[T any](n int) ([]T, []byte, error) {
	var zero T
	mem, err := unix.Mmap(-1, 0, n*int(unsafe.Sizeof(zero)), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, nil, err
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&mem[0])), n), mem, nil
}

// MapOrHeap is Map, or n elements from the Go heap (mem nil) when n is 0
// or mmap fails.
func MapOrHeap[T any](n int) (s []T, mem []byte) {
	if n > 0 {
		if s, mem, err := Map[T](n); err == nil {
			return s, mem
		}
	}
	return make([]T, n), nil
}

// Unmap returns a mapping of Map's (nil: none, the Go heap's).
func Unmap(mem []byte) {
	if mem != nil {
		_ = unix.Munmap(mem)
	}
}

// Return gives the kernel back the pages of mem[from:to], a part of a
// mapping used in order, everything before from done with too: a page
// shared with the bytes after to goes with the next part, or with the
// mapping's end. The pages read as zeroes after. mem nil: nothing.
func Return(mem []byte, from, to int) {
	if mem == nil {
		return
	}
	page := unix.Getpagesize()
	from &^= page - 1
	if to < len(mem) {
		to &^= page - 1
	}
	if from < to {
		_ = unix.Madvise(mem[from:to], unix.MADV_DONTNEED)
	}
}
