package inproc

import (
	"unsafe"

	"github.com/lsan-project/lsan/internal/anonmem"
)

// blockTable is the live set of one process: open addressing on the
// block address, linear probing, deletion by backward shift. The drain
// loop must keep up with a thread allocating every 20 ns; a Go map costs
// several times what this does per insert and delete.
//
// A large table lives outside the Go heap (see slots): a million blocks
// take 64 MiB, which must go back to the kernel when the table grows or
// is dropped, not at some later collection.
type blockTable struct {
	slots
	n int
	// changes counts the puts and deletes: a reader that lets go of the
	// lock between parts of the table (Recorder.EachBlock) tells by it
	// that the table changed meanwhile.
	changes uint64
	mask    uint64
	shift   uint // 64 - log2(len(keys)): the product's high bits are the best mixed
}

func newBlockTable() *blockTable {
	// Small: a process that allocates little (or a dead one whose last
	// frees arrive after lsan forgot it) costs little.
	return newBlockTableOf(16)
}

// newBlockTableOf makes an empty table of n slots (a power of two).
func newBlockTableOf(n int) *blockTable {
	bits := uint(0)
	for 1<<bits < n {
		bits++
	}
	return &blockTable{slots: newSlots(1 << bits), mask: 1<<bits - 1, shift: 64 - bits}
}

func (t *blockTable) slot(addr uint64) uint64 {
	return addr * 0x9e3779b97f4a7c15 >> t.shift
}

// find returns addr's slot and whether it holds addr.
func (t *blockTable) find(addr uint64) (uint64, bool) {
	i := t.slot(addr)
	for {
		switch t.keys[i] {
		case addr:
			return i, true
		case 0:
			return i, false
		}
		i = (i + 1) & t.mask
	}
}

func (t *blockTable) get(addr uint64) (liveBlock, bool) {
	i, ok := t.find(addr)
	if !ok {
		return liveBlock{}, false
	}
	return t.vals[i], true
}

func (t *blockTable) put(addr uint64, b liveBlock) {
	t.changes++
	i, ok := t.find(addr)
	if !ok {
		if (t.n+1)*4 > len(t.keys)*3 {
			t.grow()
			i, _ = t.find(addr)
		}
		t.keys[i] = addr
		t.n++
	}
	t.vals[i] = b
}

func (t *blockTable) del(addr uint64) {
	i, ok := t.find(addr)
	if !ok {
		return
	}
	t.changes++
	t.n--
	// Shift back the entries after i whose home slot is not between the
	// hole and them, so that every probe sequence stays unbroken.
	for j := (i + 1) & t.mask; t.keys[j] != 0; j = (j + 1) & t.mask {
		home := t.slot(t.keys[j])
		if (j-home)&t.mask >= (j-i)&t.mask {
			t.keys[i], t.vals[i] = t.keys[j], t.vals[j]
			i = j
		}
	}
	t.keys[i] = 0
	t.vals[i] = liveBlock{}
}

// grow doubles the table. The old slots go back to the kernel as they
// are moved: a table of a million blocks grows from 32 to 64 MiB, not
// to 96.
func (t *blockTable) grow() {
	old := t.slots
	t.slots = newSlots(2 * len(old.keys))
	t.mask = uint64(len(t.keys) - 1)
	t.shift--
	t.n = 0
	old.drain(func(k uint64, v liveBlock) { t.put(k, v) })
}

// each calls f for every block.
func (t *blockTable) each(f func(addr uint64, b liveBlock)) {
	for i, k := range t.keys {
		if k != 0 {
			f(k, t.vals[i])
		}
	}
}

// release frees the table's memory; the table must not be used after.
func (t *blockTable) release() {
	t.slots.free()
	*t = blockTable{}
}

// slots are a table's arrays: on the Go heap while small, in anonymous
// mappings of their own once large, which free returns at once and drain
// returns as it goes.
type slots struct {
	keys []uint64 // 0: empty (no block lives at address 0)
	vals []liveBlock
	// maps are the mappings behind keys and vals (nil: the Go heap).
	maps [2][]byte
}

// mappedSlots: tables of at least this many slots (1 MiB of them) are
// mapped.
const mappedSlots = 32 << 10

func newSlots(n int) slots {
	if n >= mappedSlots {
		keys, kmem, err := anonmem.Map[uint64](n)
		if err == nil {
			vals, vmem, err := anonmem.Map[liveBlock](n)
			if err == nil {
				return slots{keys: keys, vals: vals, maps: [2][]byte{kmem, vmem}}
			}
			anonmem.Unmap(kmem)
		}
	}
	return slots{keys: make([]uint64, n), vals: make([]liveBlock, n)}
}

// free returns the mappings; the slots must not be used after.
func (s *slots) free() {
	for _, m := range s.maps {
		anonmem.Unmap(m)
	}
	*s = slots{}
}

// drainPart is how many slots drain walks before it returns their pages.
const drainPart = 64 << 10

// drain calls f for every entry, in slot order, returning the pages of
// the slots walked to the kernel part by part, and frees the slots: the
// entries' new home and their old one are never both whole.
func (s *slots) drain(f func(addr uint64, b liveBlock)) {
	for lo := 0; lo < len(s.keys); lo += drainPart {
		hi := min(lo+drainPart, len(s.keys))
		for i, k := range s.keys[lo:hi] {
			if k != 0 {
				f(k, s.vals[lo+i])
			}
		}
		s.returnPages(lo, hi)
	}
	s.free()
}

// returnPages gives the kernel back the whole pages of slots [lo, hi) of
// mapped slots; they read as zeroes after.
func (s *slots) returnPages(lo, hi int) {
	if s.maps[0] == nil {
		return
	}
	anonmem.Return(s.maps[0], lo*int(unsafe.Sizeof(uint64(0))), hi*int(unsafe.Sizeof(uint64(0))))
	anonmem.Return(s.maps[1], lo*int(unsafe.Sizeof(liveBlock{})), hi*int(unsafe.Sizeof(liveBlock{})))
}
