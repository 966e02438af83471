// Package bpf loads lsan's eBPF allocation tracer into the kernel, attaches
// it to the allocator of one target process, and reads what it recorded:
// the live blocks, their stacks, and the counts of what could not be
// recorded.
package bpf

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Options configure a Tracer.
type Options struct {
	PID int
	// MaxBlocks is the capacity of the live-block map.
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
}

// Default capacities. The block map is preallocated (about 80 bytes of
// kernel memory per entry), the stack map is not.
const (
	DefaultMaxBlocks = 1 << 20
	DefaultMaxStacks = 1 << 16
)

// Block is one live allocation recorded by the tracer.
type Block struct {
	Addr        uint64
	Size        uint64
	TimestampNS uint64 // CLOCK_MONOTONIC
	StackID     uint64 // 0: no stack
	TID         uint32
	Fn          uint16 // index into AllocatorFuncs

	generation uint16 // exec generation at allocation
}

// Counters are the tracer's event counts since attach.
type Counters struct {
	Allocs, Frees                                 uint64
	AllocsDropped, StacksDropped, InflightDropped uint64
	ForeignHits                                   uint64
	// ExitStops counts the times the process stopped itself at _exit.
	ExitStops uint64
}

// Probe is one attached uprobe, for diagnostics.
type Probe struct {
	Func   string
	Object string
	// Offset is the function's file offset; Placement.Offset is added.
	Offset    uint64
	Placement Placement
	Returns   bool
}

// Tracer is the allocation tracer attached to one process.
type Tracer struct {
	opts      Options
	objs      tracerObjects
	links     []link.Link
	allocator *Allocator
	probes    []Probe
	// fnAddrs maps a Block.Fn to the allocator function's address in the
	// target, the first frame of every allocation stack.
	fnAddrs    []uint64
	stackCache map[uint64][]uint64
	// orphans are the stacks no live block referenced at the last prune.
	orphans map[uint64]bool
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
	if err := checkTarget(opts.PID); err != nil {
		return nil, err
	}
	alloc, err := DiscoverAllocator(opts.PID, funcNames(), opts.Allocator)
	if err != nil {
		return nil, err
	}
	t := &Tracer{opts: opts, allocator: alloc, stackCache: map[uint64][]uint64{}}
	if err := t.load(); err != nil {
		t.Close()
		return nil, err
	}
	if err := t.attachAll(); err != nil {
		t.Close()
		return nil, err
	}
	if err := t.watchExec(); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
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
	if err := spec.Variables["target_tgid"].Set(uint32(t.opts.PID)); err != nil {
		return fmt.Errorf("set target pid: %w", err)
	}
	if err := spec.Variables["sample_rate"].Set(t.opts.SampleRate); err != nil {
		return fmt.Errorf("set sample rate: %w", err)
	}
	if t.opts.StopAtExit {
		if err := spec.Variables["stop_at_exit"].Set(uint32(1)); err != nil {
			return fmt.Errorf("set stop_at_exit: %w", err)
		}
	}
	if t.opts.SkipStacks {
		if err := spec.Variables["skip_stacks"].Set(uint32(1)); err != nil {
			return fmt.Errorf("set skip_stacks: %w", err)
		}
	}
	if err := spec.LoadAndAssign(&t.objs, nil); err != nil {
		return explainLoadError(err)
	}
	return nil
}

// explainLoadError names what is missing when the kernel refuses the
// program, instead of a verifier log or a bare errno.
func explainLoadError(err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, os.ErrPermission):
		return fmt.Errorf("loading BPF programs is not permitted: run as root, or grant CAP_BPF and CAP_PERFMON (and CAP_SYS_PTRACE for leak checks): %w", err)
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("this kernel has no BPF support (CONFIG_BPF_SYSCALL): %w", err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("this kernel lacks a BPF feature lsan needs (5.15 or later with BTF is required): %w", err)
	}
	return fmt.Errorf("load BPF program: %w", err)
}

func (t *Tracer) programFor(k probeKind) *ebpf.Program {
	switch k {
	case kindCalloc:
		return t.objs.CallocEnter
	case kindRealloc:
		return t.objs.ReallocEnter
	case kindReallocarray:
		return t.objs.ReallocarrayEnter
	case kindMemalign:
		return t.objs.MemalignEnter
	case kindPosixMemalign:
		return t.objs.PosixMemalignEnter
	case kindStrdup:
		return t.objs.StrdupEnter
	case kindFree:
		return t.objs.FreeEnter
	case kindExit:
		return t.objs.ExitEnter
	default:
		return t.objs.MallocEnter
	}
}

// attachAll puts an entry probe on every allocator function found (and a
// return probe on those that allocate). Two names bound to the same code
// (aliases) are probed once, or every call would be seen twice.
func (t *Tracer) attachAll() error {
	t.fnAddrs = make([]uint64, len(AllocatorFuncs))
	type site struct {
		path string
		off  uint64
	}
	done := map[site]bool{}
	for i, fn := range AllocatorFuncs {
		b, ok := t.allocator.Bindings[fn.Name]
		if fn.kind == kindExit && !t.opts.StopAtExit {
			continue
		}
		if len(t.opts.OnlyFuncs) > 0 && !slices.Contains(t.opts.OnlyFuncs, fn.Name) {
			continue
		}
		if !ok {
			if fn.Required {
				return fmt.Errorf("pid %d: %s not found in any loaded object", t.opts.PID, fn.Name)
			}
			continue
		}
		t.fnAddrs[i] = b.RuntimeAddr()
		s := site{b.Object.OpenPath, b.FileOffset}
		if done[s] {
			continue
		}
		done[s] = true
		if err := t.attachFunc(uint16(i), fn, b); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tracer) attachFunc(index uint16, fn AllocatorFunc, b Binding) error {
	ex, err := link.OpenExecutable(b.Object.OpenPath)
	if err != nil {
		return fmt.Errorf("open %s: %w", b.Object.Path, err)
	}
	place := placeBinding(b, fn.kind, t.opts.Placement)
	opts := &link.UprobeOptions{Address: b.FileOffset + place.Offset, Cookie: uint64(index)}
	if !t.opts.NoPIDFilter {
		// The kernel then installs the breakpoint in the target only:
		// other processes using the same library run at full speed.
		opts.PID = t.opts.PID
	}
	l, err := ex.Uprobe(fn.Name, t.programFor(fn.kind), opts)
	if err != nil {
		return explainAttachError(fn.Name, b.Object.Path, err)
	}
	t.links = append(t.links, l)
	t.probes = append(t.probes, Probe{Func: fn.Name, Object: b.Object.Path, Offset: b.FileOffset, Placement: place})
	if !fn.kind.allocates() || t.opts.NoReturnProbes {
		return nil
	}
	l, err = ex.Uretprobe(fn.Name, t.objs.AllocReturn, opts)
	if err != nil {
		return explainAttachError(fn.Name+" (return)", b.Object.Path, err)
	}
	t.links = append(t.links, l)
	t.probes = append(t.probes, Probe{Func: fn.Name, Object: b.Object.Path, Offset: b.FileOffset, Placement: place, Returns: true})
	return nil
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

// FuncAddr is the target address of AllocatorFuncs[fn], or 0.
func (t *Tracer) FuncAddr(fn uint16) uint64 {
	if int(fn) < len(t.fnAddrs) {
		return t.fnAddrs[fn]
	}
	return 0
}

// Close detaches every probe and frees the maps. Safe to call twice.
func (t *Tracer) Close() error {
	// Each uprobe detach waits for an RCU grace period; closing them
	// concurrently makes detaching take one grace period, not one per probe.
	errs := make([]error, len(t.links))
	var wg sync.WaitGroup
	for i, l := range t.links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.Close()
		}()
	}
	wg.Wait()
	t.links = nil
	first := errors.Join(errs...)
	if err := t.objs.Close(); err != nil && first == nil {
		first = err
	}
	t.objs = tracerObjects{}
	return first
}
