package session

import (
	"github.com/lsan-project/lsan/bpf"
	"github.com/lsan-project/lsan/internal/anonmem"
	"github.com/lsan-project/lsan/scanner"
)

// trackedSet is what a leak check keeps of the tracked blocks, of which a
// large program holds millions: the scanner's 24-byte records, whose Tag
// names the block's allocation stack and allocator function, and one
// block of each such stack, which holds what the report needs of them all
// (the stack, the allocator's name, a suppression's verdict).
type trackedSet struct {
	blocks []scanner.Block
	stacks []bpf.Block // by Tag
	// born holds the blocks' allocation times where a check may scan a
	// fork copy, whose leaks the next check confirms (leakedSet); nil
	// otherwise.
	born []uint64
	// readAt is when the blocks were read (CLOCK_MONOTONIC; the fork's
	// instant for a fork copy's): all were born by then (see leakedSet).
	readAt uint64
	// mem is the mapping blocks lives in (nil: the Go heap): see
	// mapBlocks. release returns it.
	mem []byte
}

// release returns the blocks' mapping, if they have one; the set must
// not be used after.
func (t *trackedSet) release() {
	if t.mem != nil {
		anonmem.Unmap(t.mem)
		*t = trackedSet{}
	}
}

// mapBlocks returns an empty slice of capacity n outside the Go heap
// (ok false: mmap failed), for the blocks of a check at a process's
// exit, which are made as the recorder's table goes back (Take). The Go
// heap zeroes a large allocation that reuses any of its pages, touching
// it all at once: then a million blocks' 24 MiB and the 64 MiB table
// were resident together (lsan run's peak 106 instead of 84 MiB one time
// in three), where a fresh mapping is touched only as it fills.
func mapBlocks(n int) ([]scanner.Block, []byte, bool) {
	blocks, mem := anonmem.MapOrHeap[scanner.Block](n)
	return blocks[:0], mem, mem != nil
}

// mapBlocksMin: sets of at least this many blocks (6 MiB) are mapped.
const mapBlocksMin = 256 << 10

// bornOf is block i's allocation time (0 where born is not kept).
func (t *trackedSet) bornOf(i int) uint64 {
	if t.born == nil {
		return 0
	}
	return t.born[i]
}

// trackedBuilder makes a trackedSet one block at a time.
type trackedBuilder struct {
	s     *Session
	set   trackedSet
	tags  map[stackFn]uint32
	roots []bool // by Tag: the dynamic linker allocated the stack's blocks
	kinds []scanner.Allocator
	// Blocks come in runs of one stack (a loop's allocations): the last
	// one's tag is at hand.
	last    stackFn
	lastTag uint32
	hasLast bool
}

// stackFn is what a Tag stands for: an allocation stack and function.
type stackFn struct {
	stack uint64
	fn    uint16
}

// newTrackedBuilder makes a builder for about n blocks.
func (s *Session) newTrackedBuilder(n int) *trackedBuilder {
	tb := &trackedBuilder{s: s, tags: map[stackFn]uint32{}, kinds: s.allocatorKinds()}
	tb.set.blocks = make([]scanner.Block, 0, n)
	return tb.withBorn(n)
}

// newMappedBuilder is newTrackedBuilder for about n blocks, which a large
// set keeps in a mapping of its own (mapBlocks; blocks beyond n move the
// set to the Go heap): the set must be released.
func (s *Session) newMappedBuilder(n int) *trackedBuilder {
	if n < mapBlocksMin {
		return s.newTrackedBuilder(n)
	}
	blocks, mem, ok := mapBlocks(n)
	if !ok {
		return s.newTrackedBuilder(n)
	}
	tb := &trackedBuilder{s: s, tags: map[stackFn]uint32{}, kinds: s.allocatorKinds()}
	tb.set.blocks, tb.set.mem = blocks, mem
	return tb.withBorn(n)
}

// withBorn keeps the blocks' allocation times where a check needs them.
func (tb *trackedBuilder) withBorn(n int) *trackedBuilder {
	s := tb.s
	if s.scanOptions().Fork {
		tb.set.born = make([]uint64, 0, n)
	}
	return tb
}

// add appends b.
func (tb *trackedBuilder) add(b bpf.Block) {
	tb.set.blocks = append(tb.set.blocks, tb.record(b))
	if tb.set.born != nil {
		tb.set.born = append(tb.set.born, b.TimestampNS)
	}
}

// record is the scanner's record of b: lsan's size, and a root when the
// dynamic linker allocated it (see linkerAllocated).
func (tb *trackedBuilder) record(b bpf.Block) scanner.Block {
	tag := tb.tagOf(b)
	sb := scanner.Block{Addr: b.Addr, Size: tb.s.lsanSize(b), Tag: tag, Root: tb.roots[tag]}
	if int(b.Fn) < len(tb.kinds) {
		sb.Allocator = tb.kinds[b.Fn]
	}
	return sb
}

// tagOf returns the tag of b's stack and function, b's block becoming
// the stack's if it is the first.
func (tb *trackedBuilder) tagOf(b bpf.Block) uint32 {
	k := stackFn{b.StackID, b.Fn}
	if tb.hasLast && k == tb.last {
		return tb.lastTag
	}
	tag, ok := tb.tags[k]
	if !ok {
		tag = uint32(len(tb.set.stacks))
		tb.tags[k] = tag
		tb.set.stacks = append(tb.set.stacks, b)
		tb.roots = append(tb.roots, tb.s.linkerAllocated(b))
	}
	tb.last, tb.lastTag, tb.hasLast = k, tag, true
	return tag
}

func (tb *trackedBuilder) done() *trackedSet { return &tb.set }
