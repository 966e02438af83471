package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// batchSize is how many map entries one batch syscall returns.
const batchSize = 4096

// Blocks returns the live blocks of one traced process. For a
// consistent view, call it while that process is stopped.
func (t *Tracer) Blocks(pid int) ([]Block, error) {
	out := make([]Block, 0, t.expectedBlocks())
	err := t.EachBlock(pid, func(b Block) { out = append(out, b) })
	return out, err
}

// EachBlock calls fn with each live block of one traced process, as the
// map is read batch by batch: a million blocks never sit in one slice (48
// MiB) beside the records a caller makes of them. Like Blocks, it reads
// every process's blocks (one map holds them all) for PruneStacks.
func (t *Tracer) EachBlock(pid int, fn func(Block)) error {
	return t.readBlocks(func(b Block) {
		if b.PID == pid {
			fn(b)
		}
	})
}

// ExpectedBlocks is about how many blocks the next read gives, every
// process's: a capacity for the caller's arrays.
func (t *Tracer) ExpectedBlocks() int { return t.expectedBlocks() }

// readBlocks reads the whole block map (every process's blocks) and keeps
// what PruneStacks needs of it, calling fn with each live block: those
// of an earlier program image are deleted instead (dropStale), and those
// whose stacks lsan walked again get them (late.go).
func (t *Tracer) readBlocks(fn func(Block)) (err error) {
	late := t.beginLate()
	defer func() { late.end(err == nil) }()
	stale := t.staleFilter()
	referenced := make(map[uint64]bool, len(t.referencedStacks))
	n := 0
	each := func(b Block) {
		if stale(b) {
			return
		}
		late.apply(&b)
		referenced[b.StackID] = true
		n++
		fn(b)
	}
	err = t.blocksBatched(each)
	if errors.Is(err, ebpf.ErrNotSupported) {
		err = t.blocksIterated(each)
	}
	if err != nil {
		return err
	}
	t.referencedStacks, t.lastCount = referenced, n
	return nil
}

// staleFilter returns a test that deletes and reports the blocks whose
// memory no longer exists: those allocated before their process's last
// execve, and those of processes no longer traced.
func (t *Tracer) staleFilter() func(Block) bool {
	gens := map[int]int{} // pid -> exec generation, -1: not traced
	generation := func(pid int) int {
		if g, ok := gens[pid]; ok {
			return g
		}
		var v tracerTarget
		g := -1
		if err := t.objs.Targets.Lookup(uint32(pid), &v); err == nil {
			g = int(v.Generation)
		}
		gens[pid] = g
		return g
	}
	return func(b Block) bool {
		if int(b.generation) == generation(b.PID) {
			return false
		}
		t.objs.Allocs.Delete(blockKey(b.PID, b.Addr))
		return true
	}
}

// deleteBlocksOf deletes the blocks of a process that is gone.
func (t *Tracer) deleteBlocksOf(pid int) {
	each := func(b Block) {
		if b.PID == pid {
			t.objs.Allocs.Delete(blockKey(pid, b.Addr))
		}
	}
	if err := t.blocksBatched(each); errors.Is(err, ebpf.ErrNotSupported) {
		t.blocksIterated(each)
	}
}

func blockKey(pid int, addr uint64) tracerBlockKey {
	return tracerBlockKey{Addr: addr, Tgid: uint32(pid)}
}

func (t *Tracer) blocksBatched(fn func(Block)) error {
	var (
		cursor ebpf.MapBatchCursor
		keys   = make([]tracerBlockKey, batchSize)
		vals   = make([]tracerBlock, batchSize)
	)
	for {
		n, err := t.objs.Allocs.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			fn(toBlock(keys[i], &vals[i]))
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read live blocks: %w", err)
		}
	}
}

// expectedBlocks guesses how many blocks the map holds, so that reading a
// million of them does not copy the slice over and over as it grows: the
// live count from the counters, or the last read's, with some room.
func (t *Tracer) expectedBlocks() int {
	n := t.lastCount
	if c, err := t.Counters(); err == nil && c.Allocs >= c.Frees+c.FreesMissed {
		n = max(n, int(c.Allocs-c.Frees-c.FreesMissed))
	}
	return min(n+n/8+batchSize, int(t.opts.MaxBlocks))
}

func (t *Tracer) blocksIterated(fn func(Block)) error {
	var (
		key tracerBlockKey
		val tracerBlock
	)
	it := t.objs.Allocs.Iterate()
	for it.Next(&key, &val) {
		fn(toBlock(key, &val))
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read live blocks: %w", err)
	}
	return nil
}

func toBlock(k tracerBlockKey, v *tracerBlock) Block {
	return Block{PID: int(k.Tgid), Addr: k.Addr, Size: v.Size, TimestampNS: v.TimestampNs, StackID: v.StackId, TID: v.Tid, Fn: v.Fn, generation: v.Generation}
}

// Stack returns the program counters of a stack, innermost first: the
// allocator function's address, then the return addresses of its callers
// (the first being the allocation call site). Stacks never change once
// stored, so they are cached.
func (t *Tracer) Stack(b Block) []uint64 {
	var pcs []uint64
	if fa := t.FuncAddr(b); fa != 0 {
		pcs = append(pcs, fa)
	}
	return append(pcs, t.returnAddresses(b.StackID)...)
}

func (t *Tracer) returnAddresses(id uint64) []uint64 {
	if id == 0 {
		return nil
	}
	if pcs, ok := t.lateStack(id); ok {
		return pcs
	}
	if pcs, ok := t.stackCache[id]; ok {
		return pcs
	}
	var st tracerStack
	if err := t.objs.Stacks.Lookup(id, &st); err != nil {
		return nil
	}
	n := min(int(st.Len), len(st.Pcs))
	pcs := append([]uint64(nil), st.Pcs[:n]...)
	t.stackCache[id] = pcs
	return pcs
}

// Counters sums the per-CPU event counters.
func (t *Tracer) Counters() (Counters, error) {
	var c Counters
	for key, dst := range map[tracerCounter]*uint64{
		tracerCounterCOUNTER_ALLOCS:           &c.Allocs,
		tracerCounterCOUNTER_FREES:            &c.Frees,
		tracerCounterCOUNTER_ALLOC_DROPPED:    &c.AllocsDropped,
		tracerCounterCOUNTER_STACK_DROPPED:    &c.StacksDropped,
		tracerCounterCOUNTER_INFLIGHT_DROPPED: &c.InflightDropped,
		tracerCounterCOUNTER_FOREIGN_HITS:     &c.ForeignHits,
		tracerCounterCOUNTER_EXIT_STOPS:       &c.ExitStops,
		tracerCounterCOUNTER_FORKS:            &c.Forks,
		tracerCounterCOUNTER_EVENTS_DROPPED:   &c.EventsDropped,
		tracerCounterCOUNTER_FREES_MISSED:     &c.FreesMissed,
		tracerCounterCOUNTER_FREED_DROPPED:    &c.FreedDropped,
		tracerCounterCOUNTER_BULK_FREES:       &c.BulkFrees,
	} {
		var perCPU []uint64
		if err := t.objs.Counters.Lookup(key, &perCPU); err != nil {
			return c, fmt.Errorf("read counter %d: %w", key, err)
		}
		for _, v := range perCPU {
			*dst += v
		}
	}
	return c, nil
}

// PruneStacks deletes the stored stacks that no live block (of any traced
// process, as of the last Blocks call) references and that were
// unreferenced at the previous call too, so that the stack map
// does not fill up with stacks of freed blocks. (Between a probe finding a
// stack stored and recording its block, a stack can look unreferenced; the
// second sighting makes deleting it in that window very unlikely, and the
// worst case is one block shown without its stack.) It returns how many
// stacks were deleted.
func (t *Tracer) PruneStacks() (int, error) {
	referenced := t.referencedStacks
	ids, err := t.stackIDs()
	if err != nil {
		return 0, err
	}
	var doomed []uint64
	orphans := map[uint64]bool{}
	for _, id := range ids {
		if referenced[id] {
			continue
		}
		orphans[id] = true
		if t.orphans[id] {
			doomed = append(doomed, id)
		}
	}
	t.orphans = orphans
	deleted := 0
	for _, id := range doomed {
		if err := t.objs.Stacks.Delete(id); err == nil {
			deleted++
			delete(t.stackCache, id)
			delete(t.orphans, id)
		}
	}
	if deleted > 0 {
		// The probe's walk cache hands out the stacks it remembers
		// without looking them up while this count stays the same
		// (bpf/unwind.h): counted after the deletes, so that a walk it
		// remembered before them is not replayed after.
		t.stacksPruned++
		if err := t.objs.UnwindEpochs.Put(tracerUnwindEpochUNWIND_EPOCH_STACKS, t.stacksPruned); err != nil {
			return deleted, fmt.Errorf("count pruned stacks: %w", err)
		}
	}
	return deleted, nil
}

// PruneLive reads the live blocks and prunes the stacks none uses, while
// the targets run: freed blocks' stacks are released between checks.
func (t *Tracer) PruneLive() (int, error) {
	if err := t.readBlocks(func(Block) {}); err != nil {
		return 0, err
	}
	return t.PruneStacks()
}

// stackIDs lists the keys of the stack map.
func (t *Tracer) stackIDs() ([]uint64, error) {
	var (
		ids []uint64
		key uint64
	)
	for {
		var next uint64
		var err error
		if ids == nil {
			err = t.objs.Stacks.NextKey(nil, &next)
		} else {
			err = t.objs.Stacks.NextKey(key, &next)
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return ids, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list stacks: %w", err)
		}
		ids = append(ids, next)
		key = next
	}
}

// FreedRange is memory the target freed since recording began.
type FreedRange struct {
	Addr, Size uint64
	TimeNS     uint64 // CLOCK_MONOTONIC at the free
}

// freedGrace: frees in the first moments of recording are not used. An
// allocator call that began before the attach returns unseen, and may hand
// out memory freed just after it: that memory would pass for free.
const freedGrace = 200 * 1e6 // ns

// Freed returns the ranges pid freed since recording began (TrackFreed),
// minus those handed out again. For a consistent view, call it while the
// process is stopped.
func (t *Tracer) Freed(pid int) ([]FreedRange, error) {
	if !t.opts.TrackFreed {
		return nil, nil
	}
	var target tracerTarget
	if err := t.objs.Targets.Lookup(uint32(pid), &target); err != nil {
		return nil, nil // not traced (any more): nothing to leave out
	}
	var (
		cursor ebpf.MapBatchCursor
		keys   = make([]tracerBlockKey, batchSize)
		vals   = make([]tracerFreed, batchSize)
		out    []FreedRange
	)
	for {
		n, err := t.objs.FreedRanges.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			k, v := keys[i], vals[i]
			if int(k.Tgid) != pid || v.Generation != target.Generation || v.TimeNs < t.recordingSinceOf(pid)+freedGrace {
				continue
			}
			out = append(out, FreedRange{Addr: k.Addr, Size: v.Size, TimeNS: v.TimeNs})
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read freed ranges: %w", err)
		}
	}
}
