package session

import (
	"encoding/binary"
	"slices"
	"sort"
)

// leakedSet is what a check keeps of the blocks it found leaked, for the
// next check to confirm them (confirmLeaks): their addresses, packed, and
// the time its set was read (readAt, CLOCK_MONOTONIC).
//
// An address is enough. Every block of the set was born by readAt, and
// was live when the tracer's map was read, after readAt: a block at the
// same address born by readAt too and live later is that block; any other
// block there was allocated after that one was freed, after readAt, so
// was born after it. A block is leaked before exactly when its address is
// in the set and it was born by readAt. (A million leaked blocks' ids,
// address and birth, took 16 MiB, held through the next check's scan;
// their packed addresses take about 1.3.)
type leakedSet struct {
	readAt uint64
	addrs  packedAddrs
}

func (l *leakedSet) has(addr, born uint64) bool {
	return l != nil && born <= l.readAt && l.addrs.has(addr)
}

// packedAddrs is a sorted set of addresses in groups of packGroup: each
// group's first address, and the others as varint deltas, which blocks of
// a heap, a few dozen bytes apart, keep to one or two bytes.
type packedAddrs struct {
	firsts []uint64
	offs   []uint32 // where each group's deltas start in deltas
	deltas []byte
}

const packGroup = 32

// packAddrs packs addrs, which it sorts.
func packAddrs(addrs []uint64) packedAddrs {
	slices.Sort(addrs)
	addrs = slices.Compact(addrs)
	groups := (len(addrs) + packGroup - 1) / packGroup
	p := packedAddrs{firsts: make([]uint64, 0, groups), offs: make([]uint32, 0, groups)}
	// Sized for a byte a delta, as a dense heap's are: the append grows
	// it where they are longer.
	p.deltas = make([]byte, 0, len(addrs))
	for i, a := range addrs {
		if i%packGroup == 0 {
			p.firsts = append(p.firsts, a)
			p.offs = append(p.offs, uint32(len(p.deltas)))
			continue
		}
		p.deltas = binary.AppendUvarint(p.deltas, a-addrs[i-1])
	}
	p.deltas = slices.Clip(p.deltas)
	return p
}

func (p *packedAddrs) len() int {
	if len(p.firsts) == 0 {
		return 0
	}
	return (len(p.firsts)-1)*packGroup + p.groupLen(len(p.firsts)-1)
}

// groupLen is how many addresses group g holds.
func (p *packedAddrs) groupLen(g int) int {
	if g < len(p.firsts)-1 {
		return packGroup
	}
	n, end := 1, len(p.deltas)
	for o := int(p.offs[g]); o < end; n++ {
		_, k := binary.Uvarint(p.deltas[o:])
		o += k
	}
	return n
}

func (p *packedAddrs) has(addr uint64) bool {
	g := sort.Search(len(p.firsts), func(i int) bool { return p.firsts[i] > addr }) - 1
	if g < 0 {
		return false
	}
	a, o := p.firsts[g], int(p.offs[g])
	end := len(p.deltas)
	if g+1 < len(p.offs) {
		end = int(p.offs[g+1])
	}
	for a < addr && o < end {
		d, k := binary.Uvarint(p.deltas[o:])
		a, o = a+d, o+k
	}
	return a == addr
}
