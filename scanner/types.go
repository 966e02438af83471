package scanner

import (
	"errors"
	"fmt"
	"time"
)

// Block is one tracked heap block as the allocation tracer recorded it:
// 24 bytes, as a check holds every tracked block at once.
type Block struct {
	Addr uint64 // the pointer the allocator returned
	Size uint64 // the requested size: what reports show
	// Tag is the caller's, carried through untouched: lsan keeps there
	// which allocation stack the block came from, so that it needs no
	// other record of each block during a check.
	Tag uint32
	// Root makes the block a root: reachable whatever points to it, and
	// scanned. LSan treats the dynamic linker's allocations so (DTVs and
	// dynamic TLS blocks of threads live and cached).
	Root bool
	// Allocator served this block, when not Options.Allocator: a process
	// may have two (redis: its bundled je_malloc beside glibc's malloc).
	Allocator Allocator
}

// Range is an address range [Addr, Addr+Size).
type Range struct {
	Addr, Size uint64
}

// Snapshot is what the caller's snapshot function returns while the
// target is stopped.
type Snapshot struct {
	Blocks []Block
	// Usable, if not nil, is parallel to Blocks: each block's usable size
	// as the tracer saw it (say, glibc's chunk size read from the header
	// when malloc returned), 0 where it did not. Check then trusts it
	// instead of computing it. It is ignored when smaller than the
	// block's Size.
	Usable []uint64
	// Freed is memory the target has freed and not been handed again
	// (attach mode, where heap memory is otherwise a root). It is left out
	// of the roots: stale pointers in freed chunks must not keep leaked
	// blocks alive. Live thread stacks and TLS are never left out.
	Freed []Range
	// Reused is memory known to have been handed out again since Freed
	// was recorded, at other bounds than the freed chunk's (an allocator
	// carving a freed slab into another size class): never left out. In
	// a fork snapshot, a block live in the copy but freed since is not
	// tracked any more; only its later release says it held live data.
	Reused []Range
}

// RootSet chooses what memory is a root.
type RootSet uint8

const (
	// RootsAttach: every writable mapping (globals, heap, anonymous
	// memory), because blocks allocated before the attach are untracked
	// and live there, minus freed memory, the dead part of live stacks,
	// cached stacks of exited threads and the tracked blocks.
	RootsAttach RootSet = iota
	// RootsLSan: LeakSanitizer's root set, for a process whose every
	// block is tracked (lsan run): the writable segments of loaded
	// modules, the live part of live threads' stacks, their static TLS
	// and registers. Heap and other anonymous memory are not roots.
	RootsLSan
)

// Class is what a check decided about a block. The order follows
// LeakSanitizer's chunk tags (kDirectlyLeaked, kIndirectlyLeaked,
// kReachable, kIgnored).
type Class uint8

const (
	// Direct: unreachable, and no other unreachable block points to it.
	Direct Class = iota
	// Indirect: unreachable, but pointed to by another unreachable block.
	Indirect
	// Reachable: reached from a root (registers, stacks, writable memory).
	Reachable
	// Ignored: a block the caller asked Reclassify to treat as a root
	// (a suppressed leak). Check itself never returns it.
	Ignored
)

func (c Class) String() string {
	switch c {
	case Direct:
		return "direct"
	case Indirect:
		return "indirect"
	case Reachable:
		return "reachable"
	case Ignored:
		return "ignored"
	}
	return fmt.Sprintf("Class(%d)", uint8(c))
}

// Allocator names the allocator that served the tracked blocks; it decides
// how many bytes each block really owns (its usable size).
type Allocator uint8

const (
	// Default: for a Block, the allocator of Options; for Options,
	// Unknown.
	Default Allocator = iota
	// Unknown: the request rounded up to 16 bytes.
	Unknown
	// Glibc: ptmalloc's chunk size, read from the chunk header at Addr-8.
	Glibc
	// Jemalloc: jemalloc 5.3's size class of the request.
	Jemalloc
)

// allocator is the allocator that served b.
func (b Block) allocator(opts Options) Allocator {
	if b.Allocator != Default {
		return b.Allocator
	}
	return opts.Allocator
}

// usesJemalloc tells whether any block came from jemalloc, whose own
// metadata must then be told from references.
func usesJemalloc(blocks []Block, opts Options) bool {
	if opts.Allocator == Jemalloc {
		return true
	}
	for _, b := range blocks {
		if b.Allocator == Jemalloc {
			return true
		}
	}
	return false
}

func (a Allocator) String() string {
	switch a {
	case Glibc:
		return "glibc"
	case Jemalloc:
		return "jemalloc"
	}
	return "unknown"
}

// Options tune a check. The zero value is LSan's behaviour with the
// allocator unknown.
type Options struct {
	Allocator Allocator

	// Roots chooses the root set (RootsAttach by default).
	Roots RootSet

	// NoStacks, NoRegisters, NoGlobals and NoTLS leave those roots out
	// (LSAN_OPTIONS use_stacks=0, use_registers=0, use_globals=0,
	// use_tls=0).
	NoStacks, NoRegisters, NoGlobals, NoTLS bool

	// ScanUnaligned tests a pointer at every byte offset instead of every
	// 8-byte aligned word (LSan's use_unaligned=1). About 8x slower.
	ScanUnaligned bool

	// ExactBounds accepts only pointers into [Addr, Addr+Size), as LSan
	// does. By default a pointer anywhere into the block's usable size
	// marks it: programs such as redis use the bytes up to
	// malloc_usable_size and keep pointers into them.
	ExactBounds bool

	// ScanRedZone also scans the 128 bytes below each thread's stack
	// pointer, which the x86-64 ABI lets leaf functions use. LSan does not.
	ScanRedZone bool

	// ForceProcMem reads target memory through /proc/PID/mem instead of
	// process_vm_readv (which is used when it works).
	ForceProcMem bool

	// FreezeTimeout bounds how long Check waits for all threads to stop.
	// Zero means 10 seconds.
	FreezeTimeout time.Duration

	// Fork scans a copy-on-write copy the target forks (fork.go) instead of
	// the target itself, which is stopped only to make the copy. Where
	// that cannot be done safely the check stops it for the whole scan,
	// and Stats.ForkFallback says why.
	Fork bool
	// CopyLimit bounds what a fork snapshot may cost, in bytes: when the
	// copy's private memory grows by more while it is scanned (the target
	// rewriting its memory), the scan stops and the check is done again
	// with the target stopped. 0: half of the memory available (and of
	// the room under the target's memory cgroup limit) at the fork.
	CopyLimit uint64

	// Cancel, once closed, aborts a check in progress between two reads:
	// Check returns ErrCanceled, the target resumed as on every path.
	Cancel <-chan struct{}
}

// Stats describe one check.
type Stats struct {
	Threads      int // threads stopped and used as roots
	Blocks       int // tracked blocks considered
	Mappings     int // mappings that contributed root ranges
	FreezeRounds int // /proc/PID/task listings until no new thread appeared
	// SignalsHeld counts signals that arrived during the freeze; each was
	// delivered again at detach.
	SignalsHeld int
	// BadHeaders counts glibc chunk headers that failed validation (the
	// usable size was then computed from the request). Headers of blocks
	// whose size follows from the heap's layout are not read, so never
	// counted (see glibcTiledChunks).
	BadHeaders int

	RootBytes       uint64 // bytes of root memory read (stacks, globals, heap, anonymous memory)
	BlockBytes      uint64 // bytes of tracked blocks read
	ScannedBytes    uint64 // every byte read from the target (roots, blocks, chunk headers)
	UnreadableBytes uint64 // bytes of root or block ranges that could not be read and were skipped
	UntouchedBytes  uint64 // bytes of large ranges not read because their pages were never touched (pagemap)
	// ExitedStacks counts the cached stacks of exited threads left out of
	// the roots, FreedBytes the freed memory left out.
	ExitedStacks int
	FreedBytes   uint64

	Reachable, Direct, Indirect int

	// Where the pause goes.
	Freeze      time.Duration // stopping every thread and reading registers
	Snapshot    time.Duration // the caller's snapshot function
	Index       time.Duration // sorting the blocks, computing usable sizes, planning roots
	Mark        time.Duration // scanning the roots and flooding the reachable blocks
	Unreachable time.Duration // scanning the unreachable blocks for the edges between them

	Paused time.Duration // from the first thread stopped to the last one resumed

	// Forked: the scan read a fork of the target (Options.Fork), which
	// ran on meanwhile. ForkFallback says why a check asked to fork
	// stopped the target instead. NotInCopy counts the bytes the copy did
	// not get (MADV_DONTFORK, MADV_WIPEONFORK), counted as unreadable.
	Forked       bool
	ForkFallback string
	NotInCopy    uint64
	Total        time.Duration // the whole call
}

// Edge says that block From holds a pointer into block To. Indices are into
// Result.Blocks.
type Edge struct {
	From, To int32
}

// Result is the outcome of a check. It holds everything Reclassify needs,
// so it can be stored and reclassified without the target.
type Result struct {
	Blocks  []Block // as snapshot returned them
	Classes []Class // parallel to Blocks
	// Edges are the pointers between blocks that were not reachable from
	// the roots, sorted by (From, To), without self-references or
	// duplicates. Edges from or into reachable blocks are not kept.
	Edges []Edge
	Stats Stats

	// duplicates maps a block listed twice (the same address) to its
	// first listing, whose class it takes.
	duplicates map[int32]int32
}

// ErrTargetExited reports that the target process exited (or was never
// there) before or during the check.
var ErrTargetExited = errors.New("target process exited")

// ErrCanceled reports a check aborted through Options.Cancel.
var ErrCanceled = errors.New("check aborted")

// ErrAlreadyTraced reports that another tracer (gdb, strace, …) holds the
// target; the error is a *TracedError.
var ErrAlreadyTraced = errors.New("target already traced")

// TracedError names the tracer that prevents the freeze.
type TracedError struct {
	PID, TID, TracerPID int
}

func (e *TracedError) Error() string {
	who := fmt.Sprintf("pid %d", e.PID)
	if e.TID != e.PID {
		who = fmt.Sprintf("pid %d (thread %d)", e.PID, e.TID)
	}
	return fmt.Sprintf("%s is already traced by pid %d (TracerPid in /proc/%d/status); detach the debugger or tracer first",
		who, e.TracerPID, e.TID)
}

func (e *TracedError) Unwrap() error { return ErrAlreadyTraced }

// PanicError is returned when the check panicked. The target was resumed
// before Check returned.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("internal error during leak check (target resumed): %v", e.Value)
}
