package inproc

// blockTable is the live set of one process: open addressing on the
// block address, linear probing, deletion by backward shift. The drain
// loop must keep up with a thread allocating every 20 ns; a Go map costs
// several times what this does per insert and delete.
type blockTable struct {
	keys  []uint64 // 0: empty (no block lives at address 0)
	vals  []liveBlock
	n     int
	mask  uint64
	shift uint // 64 - log2(len(keys)): the product's high bits are the best mixed
}

func newBlockTable() *blockTable {
	// Small: a process that allocates little (or a dead one whose last
	// frees arrive after lsan forgot it) costs little.
	const initialBits = 4
	const initial = 1 << initialBits
	return &blockTable{keys: make([]uint64, initial), vals: make([]liveBlock, initial), mask: initial - 1, shift: 64 - initialBits}
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

func (t *blockTable) grow() {
	keys, vals := t.keys, t.vals
	t.keys = make([]uint64, 2*len(keys))
	t.vals = make([]liveBlock, 2*len(vals))
	t.mask = uint64(len(t.keys) - 1)
	t.shift--
	t.n = 0
	for i, k := range keys {
		if k != 0 {
			t.put(k, vals[i])
		}
	}
}

// each calls f for every block.
func (t *blockTable) each(f func(addr uint64, b liveBlock)) {
	for i, k := range t.keys {
		if k != 0 {
			f(k, t.vals[i])
		}
	}
}
