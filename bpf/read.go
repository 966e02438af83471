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
	if err == nil {
		return out, nil
	}
	if !errors.Is(err, ebpf.ErrNotSupported) {
		return nil, err
	}
	return t.blocksIterated()
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
	return Block{Addr: addr, Size: v.Size, TimestampNS: v.TimestampNs, StackID: v.StackId, TID: v.Tid, Fn: v.Fn}
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
