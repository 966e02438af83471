package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// batchSize is how many map entries one batch syscall returns.
const batchSize = 4096

// Blocks returns every live block recorded in the map. For a consistent
// view, call it while the target is stopped.
func (t *Tracer) Blocks() ([]Block, error) {
	out, err := t.blocksBatched()
	if errors.Is(err, ebpf.ErrNotSupported) {
		out, err = t.blocksIterated()
	}
	if err != nil {
		return nil, err
	}
	return t.dropOldImages(out)
}

// dropOldImages removes the blocks allocated before the target's last
// execve: that memory no longer exists.
func (t *Tracer) dropOldImages(blocks []Block) ([]Block, error) {
	var gen uint32
	if err := t.objs.ExecGeneration.Lookup(uint32(0), &gen); err != nil {
		return nil, fmt.Errorf("read exec generation: %w", err)
	}
	live := blocks[:0]
	for _, b := range blocks {
		if b.generation == uint16(gen) {
			live = append(live, b)
		} else {
			t.objs.Allocs.Delete(b.Addr)
		}
	}
	return live, nil
}

func (t *Tracer) blocksBatched() ([]Block, error) {
	var (
		cursor ebpf.MapBatchCursor
		keys   = make([]uint64, batchSize)
		vals   = make([]tracerBlock, batchSize)
		out    []Block
	)
	for {
		n, err := t.objs.Allocs.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			out = append(out, toBlock(keys[i], &vals[i]))
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read live blocks: %w", err)
		}
	}
}

func (t *Tracer) blocksIterated() ([]Block, error) {
	var (
		key uint64
		val tracerBlock
		out []Block
	)
	it := t.objs.Allocs.Iterate()
	for it.Next(&key, &val) {
		out = append(out, toBlock(key, &val))
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read live blocks: %w", err)
	}
	return out, nil
}

func toBlock(addr uint64, v *tracerBlock) Block {
	return Block{Addr: addr, Size: v.Size, TimestampNS: v.TimestampNs, StackID: v.StackId, TID: v.Tid, Fn: v.Fn, generation: v.Generation}
}

// Stack returns the program counters of a stack, innermost first: the
// allocator function's address, then the return addresses of its callers
// (the first being the allocation call site). Stacks never change once
// stored, so they are cached.
func (t *Tracer) Stack(b Block) []uint64 {
	var pcs []uint64
	if fa := t.FuncAddr(b.Fn); fa != 0 {
		pcs = append(pcs, fa)
	}
	return append(pcs, t.returnAddresses(b.StackID)...)
}

func (t *Tracer) returnAddresses(id uint64) []uint64 {
	if id == 0 {
		return nil
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

// PruneStacks deletes the stored stacks that no live block references and
// that were unreferenced at the previous call too, so that the stack map
// does not fill up with stacks of freed blocks. (Between a probe finding a
// stack stored and recording its block, a stack can look unreferenced; the
// second sighting makes deleting it in that window very unlikely, and the
// worst case is one block shown without its stack.) It returns how many
// stacks were deleted.
func (t *Tracer) PruneStacks(live []Block) (int, error) {
	referenced := make(map[uint64]bool, len(live))
	for _, b := range live {
		referenced[b.StackID] = true
	}
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
	return deleted, nil
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
