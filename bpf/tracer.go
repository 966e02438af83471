// Package bpf loads lsan's eBPF allocation tracer into the kernel, attaches
// it to the allocator of one target process, and reads what it recorded:
// the live blocks, their stacks, and the counts of what could not be
// recorded.
package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Options configure a Tracer.
type Options struct {
	PID int
	// MaxBlocks is the capacity of the live-block map (0: DefaultMaxBlocks;
	// see SizeBlocksFor).
	MaxBlocks uint32
	// MaxStacks is the capacity of the stack map.
	MaxStacks uint32
	// Allocator, when set, restricts discovery to that object (a path as
	// the target sees it, or a file name such as libjemalloc.so.2).
	Allocator string
	// SampleRate records 1 in SampleRate allocations (0 or 1: all).
	SampleRate uint32
	// Placement chooses where probes go (PlaceAuto: the first instruction
	// the kernel emulates; PlaceEntry: the function entry).
	Placement PlacementMode
	// OnlyFuncs, when set, probes only these functions (benchmarks use it
	// to measure the cost of each probe on its own).
	OnlyFuncs []string
	// StopAtExit makes the process stop itself (SIGSTOP) when it calls
	// _exit, for lsan run's check at exit.
	StopAtExit bool
	// SkipStacks records blocks without stacks (benchmarks only).
	SkipStacks bool
	// NoReturnProbes attaches entry probes only, so nothing is recorded
	// (benchmarks only: it isolates what the return probe costs).
	NoReturnProbes bool
	// NoPIDFilter attaches without the kernel's per-process uprobe filter.
	// Only tests use it, to prove the filter matters.
	NoPIDFilter bool
	// FollowForks traces the children that traced processes fork: each
	// is stopped at birth and reported as an EventFork, for AddProcess.
	FollowForks bool
	// SingleLinks attaches one perf-event uprobe per probe even where the
	// kernel has uprobe_multi links (tests compare the two).
	SingleLinks bool
	// TrackFreed remembers the ranges the target frees (Freed), for an
	// attach-mode scan to leave out of its roots.
	TrackFreed bool
	// ExitProbes ends allocator calls at probes on their own exits
	// (exits.go) instead of uretprobes, whose trampoline leaves copies of
	// the results on the stack that can hide a leak. x86-64 only. They cost
	// more: the kernel single-steps ret (about 3x per malloc+free pair).
	ExitProbes bool
	// MaxFreed is the capacity of the freed-range map (the oldest are
	// forgotten beyond it).
	MaxFreed uint32
	// Unwind chooses how stacks are taken (--unwind; default auto).
	Unwind UnwindMode
	// MaxUnwindRows bounds the CFI row table (8 bytes a row; 0: default).
	MaxUnwindRows uint32
	// Funcs are allocator functions the user named (--alloc-fn,
	// --free-fn, --realloc-fn; ParseFunc), probed besides the defaults.
	Funcs []AllocatorFunc
	// LifecycleOnly leaves the allocator functions unprobed: another
	// recorder (lsan run's in-process one) sees the blocks, and this
	// tracer only follows the processes (exit stops, execve, forks, the
	// dynamic linker's hook) and loads their unwind rows.
	LifecycleOnly bool
	// RowsMirror, when set, receives every unwind row and mapping list
	// the tracer loads, for the in-process recorder's walker.
	RowsMirror RowsMirror
	// Discovered, when set, is DiscoverAllocator's answer for PID with
	// the default table, found by the caller already.
	Discovered *Allocator
	// lateRowsOnly (tests): the loader neither polls the mappings nor
	// acts on the linker's events, so a module mapped after the attach
	// gets its rows only when a late stack needs them.
	lateRowsOnly bool
	// hashCalls (tests): the calls in flight go to the hash map, as on
	// kernels whose uprobe programs cannot keep task-local storage.
	hashCalls bool
}

// Default capacities. The block and stack maps are not preallocated:
// each costs 16 bytes of kernel memory per unit of capacity (its hash
// buckets) plus about 100 bytes per entry held. The freed map is an LRU
// map, preallocated (about 100 bytes per entry): it is sized to a
// sixteenth of the block map.
const (
	DefaultMaxBlocks = 1 << 21
	DefaultMaxStacks = 1 << 16
	// A daemon attached while small may grow a lot since: never less
	// than a million blocks (16 MB of buckets, the rest as used).
	MinMaxBlocks = 1 << 20
	MaxMaxBlocks = 1 << 24
)

// Block is one live allocation recorded by the tracer.
type Block struct {
	PID         int
	Addr        uint64
	Size        uint64
	TimestampNS uint64 // CLOCK_MONOTONIC
	StackID     uint64 // 0: no stack
	TID         uint32
	Fn          uint16 // index into the tracer's function table (FuncName)

	generation uint16 // exec generation at allocation
}

// Counters are the tracer's event counts since attach.
type Counters struct {
	Allocs, Frees                                 uint64
	AllocsDropped, StacksDropped, InflightDropped uint64
	ForeignHits                                   uint64
	// ExitStops counts the times a process stopped itself at _exit.
	ExitStops uint64
	// Forks counts the children stopped at birth (FollowForks);
	// EventsDropped the forks and exit stops not reported (ring buffer
	// full).
	Forks, EventsDropped uint64
	// FreesMissed counts allocations at an address lsan still held as
	// live: the free before them went unseen, so other blocks may look
	// leaked that are not.
	FreesMissed uint64
	// FreedDropped counts freed ranges forgotten (freed map full): the
	// scan is then more conservative, never less.
	FreedDropped uint64
	// BulkFrees counts calls that freed many blocks at once without a
	// free call each (mi_heap_destroy): tracked blocks may be gone.
	BulkFrees uint64
}

// Lost says whether events were lost that can change a leak verdict: an
// allocation or a free not recorded makes blocks look leaked or live
// that are not. Lost stacks only shorten what a report shows.
func (c Counters) Lost() bool {
	return c.AllocsDropped > 0 || c.InflightDropped > 0 || c.FreesMissed > 0 || c.EventsDropped > 0 || c.BulkFrees > 0
}

// Probe is one attached uprobe, for diagnostics.
type Probe struct {
	Func   string
	Object string
	// Offset is the function's file offset; Placement.Offset is added.
	Offset    uint64
	Placement Placement
	// Returns marks the probe that sees the call end: on its Exits exit
	// sites (a ret, a tail jump; none when every path tail-jumps into
	// another probed function), or, when ReturnProbeWhy says why they
	// could not be found, a uretprobe.
	Returns        bool
	Exits          int
	ReturnProbeWhy string
}

// Tracer is the allocation tracer attached to one process (and, with
// FollowForks, to the children it forks).
type Tracer struct {
	opts Options
	objs tracerObjects
	// funcs are the probed functions: AllocatorFuncs, then the user's.
	funcs []AllocatorFunc
	// links are the process-independent links (tracepoints).
	links     []link.Link
	allocator *Allocator
	probes    []Probe
	sites     []probeSite
	files     []*objectFile
	// objectFiles are the probed files by MappedObject.OpenPath.
	objectFiles map[string]*objectFile
	exitFinders map[string]*exitFinder
	multi       bool
	// procs are the traced processes, with their probes.
	procs     map[int]*traced
	detaching sync.WaitGroup

	forkLink    link.Link
	events      chan Event
	eventReader *ringbuf.Reader
	// referencedStacks are the stacks the blocks of the last map read
	// use, what PruneStacks keeps; lastCount is how many blocks it read.
	referencedStacks map[uint64]bool
	lastCount        int
	// fnAddrs maps a Block.Fn to the allocator function's address in the
	// target, the first frame of every allocation stack.
	fnAddrs    []uint64
	imageFuncs map[image][]uint64
	stackCache map[uint64][]uint64
	// orphans are the stacks no live block referenced at the last prune.
	orphans map[uint64]bool
	// stacksPruned counts the prunes that deleted stacks
	// (unwind_epochs).
	stacksPruned uint32
	// recordingSince is when the first process was registered
	// (CLOCK_MONOTONIC): recording began for every probe at once then.
	recordingSince uint64
	// unwinder loads CFI rows (nil with UnwindFP).
	unwinder *unwinder
	// late holds the stacks walked again in user space (late.go).
	late *lateStacks
}

// Attach loads the BPF program and attaches it to the allocator functions
// of opts.PID. On error nothing stays attached.
func Attach(opts Options) (*Tracer, error) {
	if opts.MaxBlocks == 0 {
		opts.MaxBlocks = DefaultMaxBlocks
	}
	if opts.MaxStacks == 0 {
		opts.MaxStacks = DefaultMaxStacks
	}
	if opts.SampleRate == 0 {
		opts.SampleRate = 1
	}
	if opts.MaxFreed == 0 {
		opts.MaxFreed = max(opts.MaxBlocks/16, 1<<14)
	}
	if opts.MaxUnwindRows == 0 {
		opts.MaxUnwindRows = DefaultMaxUnwindRows
	}
	if err := checkTarget(opts.PID); err != nil {
		return nil, err
	}
	funcs := funcTable(opts.Funcs)
	if err := checkTable(funcs); err != nil {
		return nil, err
	}
	alloc := opts.Discovered
	if alloc == nil || len(opts.Funcs) > 0 {
		var err error
		if alloc, err = DiscoverAllocator(opts.PID, funcs, opts.Allocator); err != nil {
			return nil, err
		}
	}
	t := &Tracer{
		opts:        opts,
		funcs:       funcs,
		allocator:   alloc,
		stackCache:  map[uint64][]uint64{},
		procs:       map[int]*traced{},
		imageFuncs:  map[image][]uint64{},
		exitFinders: map[string]*exitFinder{},
		multi:       !opts.SingleLinks && useMultiLinks(),
	}
	if err := t.setUp(); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

func (t *Tracer) setUp() error {
	if err := t.planProbes(); err != nil {
		return err
	}
	if err := t.load(); err != nil {
		return err
	}
	if err := t.startEvents(); err != nil {
		return err
	}
	if t.unwinder != nil && t.takesLateStacks() {
		if err := t.startLate(); err != nil {
			return err
		}
	}
	if err := t.AddProcess(t.opts.PID); err != nil {
		return err
	}
	if err := t.watchExec(); err != nil {
		return err
	}
	if t.opts.FollowForks {
		if err := t.watchForks(); err != nil {
			return err
		}
	}
	// Every probe ignores a process until it is registered, so recording
	// starts for malloc, free and the rest at one instant. Registered
	// earlier, frees seen in the window before free's probe is in place
	// would be lost, and their blocks reported as leaks.
	t.recordingSince = monotonicNow()
	if t.objs.CallsSince != nil {
		if err := t.objs.CallsSince.Set(t.recordingSince); err != nil {
			return fmt.Errorf("set calls_since: %w", err)
		}
	}
	return t.addTarget(t.opts.PID)
}

// setSwitches sets the program's load-time switches that follow from the
// options and from what lsan may do.
func (t *Tracer) setSwitches(spec *ebpf.CollectionSpec) error {
	set := func(name string, on bool) error {
		if !on {
			return nil
		}
		if err := spec.Variables[name].Set(uint32(1)); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
		return nil
	}
	glibc := isGlibc(t.allocator.Primary())
	if err := set("track_freed", t.opts.TrackFreed); err != nil {
		return err
	}
	if err := set("glibc_headers", t.opts.TrackFreed && glibc); err != nil {
		return err
	}
	// Only the allocator probes keep calls: lsan run's lifecycle-only
	// tracer does without the feature probe's program load.
	if !t.opts.LifecycleOnly && !t.opts.hashCalls && taskStorageInProbes() {
		if err := set("task_calls_on", true); err != nil {
			return err
		}
		spec.Maps["inflight"].MaxEntries = 1
	}
	return nil
}

// taskStorageInProbes says whether a uprobe program may keep task-local
// storage (Linux 6.2): the calls in flight go there (lsan.bpf.c,
// task_calls).
func taskStorageInProbes() bool {
	return features.HaveProgramHelper(ebpf.Kprobe, asm.FnTaskStorageGet) == nil
}

// isGlibc says whether obj is glibc's libc, whose malloc chunks have the
// header the free probe can read.
func isGlibc(obj *MappedObject) bool {
	return strings.HasPrefix(filepath.Base(obj.Path), "libc.so")
}

// monotonicNow is CLOCK_MONOTONIC, the clock of the tracer's timestamps.
func monotonicNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// checkTarget fails early, with the reason, for a PID that isn't there.
func checkTarget(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("invalid pid %d", pid)
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("no process with pid %d", pid)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	switch {
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("no permission to inspect pid %d: run as root, or grant CAP_SYS_PTRACE (and CAP_BPF and CAP_PERFMON to trace it)", pid)
	case err != nil:
		return fmt.Errorf("no process with pid %d", pid)
	}
	f.Close()
	return nil
}

func (t *Tracer) load() error {
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
	_ = rlimit.RemoveMemlock()
	spec, err := loadTracer()
	if err != nil {
		return fmt.Errorf("parse BPF object: %w", err)
	}
	spec.Maps["allocs"].MaxEntries = t.opts.MaxBlocks
	spec.Maps["stacks"].MaxEntries = t.opts.MaxStacks
	spec.Maps["freed_ranges"].MaxEntries = t.opts.MaxFreed
	if !t.opts.TrackFreed {
		spec.Maps["freed_ranges"].MaxEntries = 1
	}
	if err := t.setSwitches(spec); err != nil {
		return err
	}
	spec.Maps["unwind_rows"].MaxEntries = t.opts.MaxUnwindRows
	if !t.takesLateStacks() {
		// One page, the least a ring buffer takes.
		spec.Maps["late_stacks"].MaxEntries = uint32(os.Getpagesize())
	}
	if t.opts.LifecycleOnly {
		// Nothing records blocks here, nor walks rows (the mirror gets
		// them): no memory for them.
		for _, name := range []string{"allocs", "stacks", "freed_ranges", "unwind_rows"} {
			spec.Maps[name].MaxEntries = 1
		}
	}
	if err := spec.Variables["unwind_mode"].Set(t.opts.Unwind.bpfMode()); err != nil {
		return fmt.Errorf("set unwind mode: %w", err)
	}
	if t.multi {
		setMultiAttachType(spec)
	}
	if err := spec.Variables["sample_rate"].Set(t.opts.SampleRate); err != nil {
		return fmt.Errorf("set sample rate: %w", err)
	}
	if t.stopsForRows() {
		if err := spec.Variables["stop_for_rows"].Set(uint32(1)); err != nil {
			return fmt.Errorf("set stop_for_rows: %w", err)
		}
	}
	if t.opts.StopAtExit {
		if err := spec.Variables["stop_at_exit"].Set(uint32(1)); err != nil {
			return fmt.Errorf("set stop_at_exit: %w", err)
		}
	}
	if t.opts.FollowForks {
		if err := spec.Variables["follow_forks"].Set(uint32(1)); err != nil {
			return fmt.Errorf("set follow_forks: %w", err)
		}
	}
	if t.opts.SkipStacks {
		if err := spec.Variables["skip_stacks"].Set(uint32(1)); err != nil {
			return fmt.Errorf("set skip_stacks: %w", err)
		}
	}
	if err := t.loadObjects(spec); err != nil {
		return explainLoadError(err)
	}
	if t.opts.Unwind != UnwindFP {
		rows := t.objs.UnwindRows
		if t.opts.LifecycleOnly {
			rows = nil // the mirror's only
		}
		poll := 100 * time.Millisecond
		if t.opts.lateRowsOnly {
			poll = time.Hour
		}
		t.unwinder = newUnwinder(rows, t.objs.UnwindProcs, t.objs.Targets, t.opts.MaxUnwindRows, t.opts.Unwind, poll, t.opts.RowsMirror)
		t.unwinder.epochs = t.objs.UnwindEpochs
		t.unwinder.firstPID = t.opts.PID
	}
	return nil
}

// loadObjects loads the programs the tracer will attach. With
// LifecycleOnly the allocator programs, most of the verifier's work, are
// left out: lsan run's fixed cost.
func (t *Tracer) loadObjects(spec *ebpf.CollectionSpec) error {
	if !t.opts.LifecycleOnly {
		return spec.LoadAndAssign(&t.objs, nil)
	}
	type lifecycle struct {
		tracerMaps
		ExitEnter   *ebpf.Program `ebpf:"exit_enter"`
		MapsChanged *ebpf.Program `ebpf:"maps_changed"`
		OnExec      *ebpf.Program `ebpf:"on_exec"`
	}
	var objs lifecycle
	if t.opts.FollowForks {
		// on_fork's CO-RE relocations read the kernel's BTF, which costs:
		// loaded only when needed, with the rest, which it shares maps with.
		var withFork struct {
			lifecycle
			OnFork *ebpf.Program `ebpf:"on_fork"`
		}
		if err := spec.LoadAndAssign(&withFork, nil); err != nil {
			return err
		}
		objs, t.objs.OnFork = withFork.lifecycle, withFork.OnFork
	} else if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return err
	}
	t.objs.tracerMaps = objs.tracerMaps
	t.objs.ExitEnter, t.objs.MapsChanged, t.objs.OnExec = objs.ExitEnter, objs.MapsChanged, objs.OnExec
	return nil
}

// explainLoadError names what is missing when the kernel refuses the
// program, instead of a verifier log or a bare errno.
func explainLoadError(err error) error {
	var ve *ebpf.VerifierError
	switch {
	case errors.As(err, &ve):
		// The verifier answers EACCES too: not a permission problem.
		return fmt.Errorf("the kernel's verifier refused lsan's BPF program (a bug in lsan, please report it with `lsan --version` and `uname -r`): %w", err)
	case errors.Is(err, unix.EPERM), errors.Is(err, os.ErrPermission):
		// Not wrapped: the library's text ends in a developer hint
		// ("consider rlimit.RemoveMemlock") that misleads users.
		return fmt.Errorf("loading BPF programs is not permitted: run as root, or grant CAP_BPF and CAP_PERFMON (and CAP_SYS_PTRACE for leak checks)")
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("this kernel has no BPF support (CONFIG_BPF_SYSCALL): %w", err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("this kernel lacks a BPF feature lsan needs (5.15 or later with BTF is required): %w", err)
	}
	return fmt.Errorf("load BPF program: %w", err)
}

func (t *Tracer) programFor(sig signature) *ebpf.Program {
	switch sig.op {
	case opFree:
		return t.objs.FreeEnter
	case opBulkFree:
		return t.objs.BulkFreeEnter
	case opExit:
		return t.objs.ExitEnter
	case opMapsChanged:
		return t.objs.MapsChanged
	default:
		return t.objs.AllocEnter
	}
}

// stopsForRows: the processes of lsan run (StopAtExit: lsan started
// them and waits for them) stop when they map new code until its unwind
// rows are loaded; an attached service is not stopped for it: its new
// code gets rows at once, and stacks walked before that are walked again
// (late stacks).
func (t *Tracer) stopsForRows() bool { return t.opts.StopAtExit && t.opts.Unwind != UnwindFP }

// takesLateStacks: the probe may send stacks to be walked again
// (late.go). Not with frame-pointer stacks, which need no rows, nor in
// lsan run, whose processes wait for their rows, nor for a tracer that
// records no blocks: then the ring is one page and nothing reads it.
func (t *Tracer) takesLateStacks() bool {
	return t.opts.Unwind != UnwindFP && !t.stopsForRows() && !t.opts.LifecycleOnly
}

// watchExec counts the target's execve calls, so that blocks of a program
// image it replaced are not taken for live ones.
func (t *Tracer) watchExec() error {
	// A raw tracepoint needs no tracefs mount.
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sched_process_exec", Program: t.objs.OnExec})
	if err != nil {
		return fmt.Errorf("attach to raw tracepoint sched_process_exec: %w", err)
	}
	t.links = append(t.links, l)
	return nil
}

func explainAttachError(fn, path string, err error) error {
	switch {
	case errors.Is(err, unix.ESRCH):
		return fmt.Errorf("attach uprobe to %s in %s: the target exited", fn, path)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("attach uprobe to %s in %s: not permitted: run as root, or grant CAP_BPF and CAP_PERFMON: %w", fn, path, err)
	case errors.Is(err, ebpf.ErrNotSupported), errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("attach uprobe to %s in %s: this kernel has no uprobe support (CONFIG_UPROBE_EVENTS): %w", fn, path, err)
	}
	return fmt.Errorf("attach uprobe to %s in %s: %w", fn, path, err)
}

// Allocator says where the probes were placed.
func (t *Tracer) Allocator() *Allocator { return t.allocator }

// Probes lists the attached probes.
func (t *Tracer) Probes() []Probe { return t.probes }

// Close detaches every probe and frees the maps. Safe to call twice.
func (t *Tracer) Close() error {
	t.stopFollowing()
	t.closeLate()
	if t.unwinder != nil {
		t.unwinder.close()
		t.unwinder = nil
	}
	links := t.links
	for _, p := range t.procs {
		links = append(links, p.links...)
	}
	t.links, t.procs = nil, map[int]*traced{}
	first := closeLinks(links)
	t.detaching.Wait()
	for _, f := range t.files {
		f.file.Close()
	}
	t.files = nil
	if err := t.objs.Close(); err != nil && first == nil {
		first = err
	}
	t.objs = tracerObjects{}
	return first
}

// SizeBlocksFor picks a block-map capacity for a process that holds
// anonBytes of anonymous memory: room for every block it could hold at 64
// bytes a block, twice over, as a power of two within [MinMaxBlocks,
// MaxMaxBlocks]: a million at least, more for a large heap; the map's
// memory follows what it holds either way.
func SizeBlocksFor(anonBytes uint64) uint32 {
	want := max(anonBytes/64*2, MinMaxBlocks)
	n := uint64(MinMaxBlocks)
	for n < want && n < MaxMaxBlocks {
		n <<= 1
	}
	return uint32(n)
}

// MaxBlocks is the block map's capacity.
func (t *Tracer) MaxBlocks() uint32 { return t.opts.MaxBlocks }
