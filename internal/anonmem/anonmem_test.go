package anonmem

import "testing"

// TestReturn: returned pages read as zeroes, the rest keeps its values,
// and a page shared with what follows stays until its part comes.
func TestReturn(t *testing.T) {
	s, mem, err := Map[uint64](3 * 512) // three 4 KiB pages
	if err != nil {
		t.Fatal(err)
	}
	defer Unmap(mem)
	for i := range s {
		s[i] = uint64(i) + 1
	}
	Return(mem, 0, 4096+8) // the first page, not the second it ends in
	if s[0] != 0 || s[511] != 0 || s[512] != 513 {
		t.Errorf("after the first part: %d %d %d, want 0 0 513", s[0], s[511], s[512])
	}
	Return(mem, 4096+8, len(mem)) // the rest, the mapping's end included
	if s[512] != 0 || s[len(s)-1] != 0 {
		t.Errorf("after the last part: %d %d, want 0 0", s[512], s[len(s)-1])
	}
	h, hmem := MapOrHeap[uint64](0)
	if len(h) != 0 || hmem != nil {
		t.Errorf("MapOrHeap(0): %d elements, mapping %v; want none from the heap", len(h), hmem != nil)
	}
	Return(nil, 0, 8) // the Go heap's: nothing
}
