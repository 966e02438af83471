package inproc

import (
	"errors"
	"slices"
	"unsafe"

	"github.com/lsan-project/lsan/bpf"
	"github.com/lsan-project/lsan/internal/anonmem"
)

// A check before a process's exit (lsan run -i) used to read the live set
// into its own while the recorder kept its table: a million blocks' 64 MiB
// table beside the check's ~80 MiB. Lending moves the set instead: the
// table goes back to the kernel as the check reads it (as at the exit,
// Take), the recorder keeps of each block only what the check's set does
// not hold (its birth and generation: 8 bytes), and the check hands its
// set back when it is done with it. Meanwhile the process runs (it is
// resumed before the report): its records go to a new table, and every
// address they touch is noted with its generation, so that handing back
// knows which lent blocks ended in the meantime.

// ErrLent: the process's live set is lent to a check (Lend) and has not
// been handed back yet.
var ErrLent = errors.New("the live set is lent to a check")

// Lent is a process's live set, lent to a check by Lend until Restore.
type Lent struct {
	r   *Recorder
	pid int
	p   *process
	mk  blockMaker
	// table is the lent set until Each drains it.
	table *blockTable
	// slots is the table's size: the one handed back is made as large,
	// and filled in the order Each read it, so that its pages are touched
	// in order as the check's set is read and returned.
	slots int
	// kept is what the check's set does not hold of each block, in the
	// order Each handed them out; odd are the whole entries of the blocks
	// whose size the check may round, or whose function the tracer's
	// number does not name alone (unique).
	kept    []keptBlock
	keptMem []byte
	odd     []oddBlock
	// shimFn maps the tracer's function numbers (Block.Fn) back to the
	// shim's, where unique says one shim function has it.
	shimFn map[uint16]uint8
	unique [256]bool
	// kills is the latest generation of each address that a record read
	// while lent touched: a lent block of an older generation ended.
	kills *blockTable
}

// keptBlock is a lent block's entry without its address, size, stack and
// function, which the check's set holds.
type keptBlock struct{ ms, gen uint32 }

type oddBlock struct {
	i int
	b liveBlock
}

// fnPvalloc is pvalloc's function number: a check rounds its blocks' sizes
// up to pages, as LSan does.
var fnPvalloc = uint8(slices.Index(fnNames, "pvalloc"))

// Lend applies every published record and lends pid's live set to a
// check, which must hand it back with Restore (nil: nothing recorded of
// pid). Until then Blocks and EachBlock refuse (ErrLent).
func (r *Recorder) Lend(pid int) *Lent {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.current(pid)
	if p == nil || p.lent != nil {
		return nil
	}
	l := &Lent{r: r, pid: pid, p: p, mk: r.blockMaker(pid), table: p.live, slots: len(p.live.keys), kills: newBlockTable()}
	l.mapFuncs(r.funcIndex)
	p.live, p.lent = newBlockTable(), l
	return l
}

// mapFuncs finds the shim's functions that the tracer's numbers name
// alone (every one, once SetFuncs has mapped them).
func (l *Lent) mapFuncs(funcIndex []uint16) {
	l.shimFn = map[uint16]uint8{}
	named := map[uint16]int{}
	for _, fn := range funcIndex {
		named[fn]++
	}
	for shim, fn := range funcIndex {
		if named[fn] == 1 {
			l.unique[shim] = true
			l.shimFn[fn] = uint8(shim)
		}
	}
}

// Len is the number of blocks lent.
func (l *Lent) Len() int { return l.table.n }

// Each calls f for every block lent, as Blocks makes them, in no order,
// returning the table's memory as it goes: it can be called once. The
// check's set must be handed back in this order (Restore).
func (l *Lent) Each(f func(bpf.Block)) {
	t := l.table
	l.table = nil
	l.kept, l.keptMem = anonmem.MapOrHeap[keptBlock](t.n)
	i := 0
	t.drain(func(addr uint64, b liveBlock) {
		if b.size() == 0 || b.fn() == fnPvalloc || !l.unique[b.fn()] {
			l.odd = append(l.odd, oddBlock{i, b})
		}
		l.kept[i] = keptBlock{ms: b.ms, gen: b.gen}
		i++
		f(l.mk.block(addr, b))
	})
	l.kept = l.kept[:i]
}

// Restore hands the set back. block(i) is the i-th block Each handed out
// (the fields Each set: its address, size, which may have been rounded as
// LSan does, zero up to one and pvalloc's up to pages, stack and
// function), asked for in order. The lent blocks that ended meanwhile are
// dropped, the blocks of the records read meanwhile added.
func (l *Lent) Restore(block func(i int) bpf.Block) {
	t := l.table
	if t == nil {
		t = l.rebuild(block)
	}
	r := l.r
	r.mu.Lock()
	defer r.mu.Unlock()
	p := l.p
	if r.procs[l.pid] != p || p.lent != l {
		// Forgotten meanwhile (an execve, or lsan let it go): what was
		// lent went with it.
		t.release()
		l.kills.release()
		return
	}
	l.kills.each(func(addr uint64, k liveBlock) {
		if b, ok := t.get(addr); ok && genBefore(b.gen, k.gen) {
			t.del(addr)
		}
	})
	p.live.each(func(addr uint64, nb liveBlock) {
		if b, ok := t.get(addr); !ok || genBefore(b.gen, nb.gen) {
			t.put(addr, nb)
		}
	})
	p.live.release()
	l.kills.release()
	p.live, p.lent = t, nil
}

// rebuild makes the lent table again from the check's set and what Each
// kept, returning the latter's memory as it goes. It runs without the
// recorder's lock: the lent set is the check's alone.
func (l *Lent) rebuild(block func(i int) bpf.Block) *blockTable {
	t := newBlockTableOf(l.slots)
	odd := l.odd
	size := int(unsafe.Sizeof(keptBlock{}))
	for i, k := range l.kept {
		given := block(i)
		var b liveBlock
		if len(odd) > 0 && odd[0].i == i {
			b, odd = odd[0].b, odd[1:]
		} else {
			b = newLiveBlock(given.Size, k.ms, k.gen, uint32(given.StackID), l.shimFn[given.Fn])
		}
		t.put(given.Addr, b)
		if (i+1)%drainPart == 0 {
			anonmem.Return(l.keptMem, (i+1-drainPart)*size, (i+1)*size)
		}
	}
	anonmem.Unmap(l.keptMem)
	l.kept, l.keptMem, l.odd = nil, nil, nil
	return t
}

// kill notes a record of addr's read while the set is lent.
func (l *Lent) kill(addr uint64, gen uint32) {
	if k, ok := l.kills.get(addr); !ok || genBefore(k.gen, gen) {
		l.kills.put(addr, liveBlock{gen: gen})
	}
}
