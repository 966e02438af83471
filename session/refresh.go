package session

import (
	"github.com/lsan-project/lsan/bpf"
	"github.com/lsan-project/lsan/internal/anonmem"
	"github.com/lsan-project/lsan/scanner"
)

// The last check's second copy (scanAndReport) reuses the tracked set of
// its first instead of reading one anew: the set is brought up to date
// with the tracer in place, and what the first copy found leaked is one
// bit per block of it, kept in step, instead of a sorted list of 16-byte
// block ids held through the second scan (a million leaked blocks: 16
// MiB, and 0.5 s of binary searches to confirm them).

// bitset is one bit per block of a trackedSet.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) has(i int) bool { return i>>6 < len(b) && b[i>>6]&(1<<(i&63)) != 0 }

func (b bitset) set(i int) { b[i>>6] |= 1 << (i & 63) }

// refreshTracked brings fc's tracked set, read for the first copy, up to
// date with the tracer's blocks allocated by forkedAt (see bornBy), and
// returns the memory of those allocated after it, as readTracked does.
// The set then holds exactly what readTracked would read, in another
// order: a block still live keeps its place and gets its record anew; a
// block freed since is dropped, even where its address was handed out
// again (a block is its address and birth); a new block is
// appended. fc.leaked moves with the blocks: a block new since the first
// copy was not leaked in it.
func (s *Session) refreshTracked(fc *firstCopy, forkedAt uint64) ([]scanner.Range, error) {
	tb := fc.tb
	n := len(tb.set.blocks)
	f := finder{t: &tb.set, n: n}
	defer f.release()
	present := newBitset(n)
	var reused []scanner.Range
	err := s.eachBlock(func(b bpf.Block) {
		switch i, ok := f.find(b.Addr, b.TimestampNS); {
		case !bornBy(b, forkedAt):
			reused = append(reused, blockRange(b))
		case ok && !present.has(i):
			tb.set.blocks[i] = tb.record(b)
			present.set(i)
		default:
			tb.add(b)
		}
	})
	if err != nil {
		return nil, err
	}
	fc.leaked = tb.keep(n, present, fc.leaked)
	tb.set.readAt = max(forkedAt, tb.set.readAt)
	return reused, nil
}

// finder finds a block among the first n of a set by address and birth.
// The tracer reads its blocks in the order of its map, which changes
// little between two reads: the block after the last one found is tried
// first (the first copy's set was made in that order), then a table of
// them all, made at the first miss.
type finder struct {
	t    *trackedSet
	n    int
	next int
	pos  *positions
}

func (f *finder) find(addr, born uint64) (int, bool) {
	if i := f.next; i < f.n && f.t.blocks[i].Addr == addr && f.t.bornOf(i) == born {
		f.next++
		return i, true
	}
	if f.pos == nil {
		f.pos = newPositions(f.t, f.n)
	}
	i, ok := f.pos.find(addr, born)
	if ok {
		f.next = i + 1
	}
	return i, ok
}

func (f *finder) release() {
	if f.pos != nil {
		f.pos.release()
	}
}

// keep drops the blocks among the first n that present does not hold,
// moving the others and those after n down, and returns leaked (bits of
// the first n) in their new places.
func (tb *trackedBuilder) keep(n int, present, leaked bitset) bitset {
	t := &tb.set
	out := newBitset(len(t.blocks))
	j := 0
	for i := range t.blocks {
		if i < n && !present.has(i) {
			continue
		}
		t.blocks[j] = t.blocks[i]
		if t.born != nil {
			t.born[j] = t.born[i]
		}
		if i < n && leaked.has(i) {
			out.set(j)
		}
		j++
	}
	t.blocks = t.blocks[:j]
	if t.born != nil {
		t.born = t.born[:j]
	}
	return out
}

// positions finds a block of a trackedSet by address and birth: an
// open-addressing table of positions+1 (0: empty), at most half full,
// outside the Go heap (8 MiB for a million blocks, for one refresh).
type positions struct {
	t     *trackedSet
	slots []uint32
	mem   []byte
	shift uint
}

// newPositions makes the table of t's first n blocks.
func newPositions(t *trackedSet, n int) *positions {
	bits := uint(4)
	for 1<<bits < 2*n {
		bits++
	}
	p := &positions{t: t, shift: 64 - bits}
	if n < mapBlocksMin {
		p.slots = make([]uint32, 1<<bits)
	} else {
		p.slots, p.mem = anonmem.MapOrHeap[uint32](1 << bits)
	}
	for i := range n {
		h := p.home(t.blocks[i].Addr, t.bornOf(i))
		for p.slots[h] != 0 {
			h = (h + 1) & (len(p.slots) - 1)
		}
		p.slots[h] = uint32(i + 1)
	}
	return p
}

// home is the first slot to look at for a block.
func (p *positions) home(addr, born uint64) int {
	return int(((addr ^ born*0x9e3779b97f4a7c15) * 0xff51afd7ed558ccd) >> p.shift)
}

// find returns the position of the block at addr born at born (ok false:
// none).
func (p *positions) find(addr, born uint64) (int, bool) {
	for h := p.home(addr, born); p.slots[h] != 0; h = (h + 1) & (len(p.slots) - 1) {
		i := int(p.slots[h] - 1)
		if p.t.blocks[i].Addr == addr && p.t.bornOf(i) == born {
			return i, true
		}
	}
	return 0, false
}

func (p *positions) release() { anonmem.Unmap(p.mem) }
