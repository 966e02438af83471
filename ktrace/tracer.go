package ktrace

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Defaults and bounds of the maps. A live object costs about 140 bytes of
// preallocated map (key, value, hash overhead), a stack 1 KiB.
const (
	DefaultMaxObjects = 1 << 19 // ~70 MiB
	DefaultMaxStacks  = 1 << 14 // ~16 MiB
)

// Options configure the tracer.
type Options struct {
	// MaxObjects bounds the live-object map; allocations beyond it are
	// counted in Counters.AllocDrops.
	MaxObjects uint32
	// MaxStacks bounds the kernel stack map.
	MaxStacks uint32
	// SampleRate records 1 in N allocations (0 or 1: all).
	SampleRate uint32
	// PID records only this process's allocations (0: every process).
	PID uint32
	// NoStacks skips the kernel stack walk (~2.8 us of ~3.3 us per
	// recorded allocation); objects are then grouped by call site.
	NoStacks bool
	// KernelBTF is the BTF file the tracepoint layouts are read from
	// ("" : the running kernel's, /sys/kernel/btf/vmlinux).
	KernelBTF string
}

// Tracer is the loaded and attached kernel tracer.
type Tracer struct {
	// Events: every tracepoint lsan knows, whether it is traced, why not.
	Events []EventStatus

	coll                                *ebpf.Collection
	progs                               map[string]*ebpf.Program
	links                               []link.Link
	objects, stacks, caches, counterMap *ebpf.Map
	// unreferenced: stack ids no live object used at the last prune.
	unreferenced map[int32]bool
}

// Open loads the programs for every tracepoint this kernel has, attaches
// them, and says in Events which it lacks. It fails only when no
// allocation tracepoint at all can be traced.
func Open(opts Options) (*Tracer, error) {
	kspec, err := kernelSpec(opts.KernelBTF)
	if err != nil {
		return nil, err
	}
	spec, err := loadKtrace()
	if err != nil {
		return nil, fmt.Errorf("load kernel tracer: %w", err)
	}
	if err := configure(spec, opts); err != nil {
		return nil, err
	}
	statuses, roles := plan(kspec)
	for name, r := range roles {
		if err := spec.Variables[name].Set(r); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	if !anyAllocation(statuses) {
		return nil, fmt.Errorf("%w (%s)", errNoTracepoints, missingList(statuses))
	}
	dropUnused(spec, statuses)
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raise memlock limit: %w", err)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: kspec}})
	if err != nil {
		return nil, fmt.Errorf("load kernel tracer: %w", loadError(err))
	}
	t := &Tracer{
		coll: coll, progs: coll.Programs, unreferenced: map[int32]bool{},
		objects: coll.Maps["objects"], stacks: coll.Maps["stacks"], caches: coll.Maps["caches"], counterMap: coll.Maps["counters"],
	}
	if err := t.attach(statuses); err != nil {
		t.Close()
		return nil, err
	}
	t.Events = statuses
	return t, nil
}

// kernelSpec is the BTF the layouts come from.
func kernelSpec(path string) (*btf.Spec, error) {
	if path == "" {
		spec, err := btf.LoadKernelSpec()
		if err != nil {
			return nil, fmt.Errorf("read the kernel's BTF (/sys/kernel/btf/vmlinux; CONFIG_DEBUG_INFO_BTF): %w", err)
		}
		return spec, nil
	}
	spec, err := btf.LoadSpec(path)
	if err != nil {
		return nil, fmt.Errorf("read BTF from %s: %w", path, err)
	}
	return spec, nil
}

func configure(spec *ebpf.CollectionSpec, opts Options) error {
	maxObjects, maxStacks := opts.MaxObjects, opts.MaxStacks
	if maxObjects == 0 {
		maxObjects = DefaultMaxObjects
	}
	if maxStacks == 0 {
		maxStacks = DefaultMaxStacks
	}
	spec.Maps["objects"].MaxEntries = maxObjects
	spec.Maps["stacks"].MaxEntries = maxStacks
	rate := opts.SampleRate
	if rate == 0 {
		rate = 1
	}
	noStacks := uint32(0)
	if opts.NoStacks {
		noStacks = 1
	}
	for name, v := range map[string]uint32{"sample_rate": rate, "target_tgid": opts.PID, "self_tgid": uint32(os.Getpid()), "no_stacks": noStacks} {
		if err := spec.Variables[name].Set(v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	return nil
}

// plan decides, from the kernel's BTF, which events can be traced and
// where the tp_btf programs find their arguments.
func plan(kspec *btf.Spec) ([]EventStatus, map[string]ktraceRoles) {
	roles := map[string]ktraceRoles{}
	var out []EventStatus
	for _, ev := range events {
		st := EventStatus{Name: ev.group + ":" + ev.name, Legacy: ev.legacy}
		switch {
		case !hasTracepoint(kspec, ev.name):
			st.Why = "not in this kernel"
			if ev.legacy {
				st.Why = "not in this kernel (merged into " + strings.TrimSuffix(ev.name, "_node") + " since Linux 6.1)"
			}
		case ev.btfArgs:
			args, ok := tracepointArgs(kspec, ev.name)
			if !ok {
				st.Why = "its arguments are not in the kernel's BTF"
				break
			}
			r, err := resolveRoles(args, ev.need)
			if err != nil {
				st.Why = err.Error()
				break
			}
			if prev, done := roles[ev.roles]; done && prev != r {
				st.Why = "its arguments differ from " + ev.prog + "'s"
				break
			}
			roles[ev.roles] = r
			st.Attached = true
		default:
			st.Attached = true
		}
		out = append(out, st)
	}
	return out, roles
}

func anyAllocation(statuses []EventStatus) bool {
	for i, st := range statuses {
		if st.Attached && events[i].alloc {
			return true
		}
	}
	return false
}

func missingList(statuses []EventStatus) string {
	var names []string
	for _, st := range statuses {
		if !st.Attached && !st.Legacy {
			names = append(names, st.Name)
		}
	}
	if len(names) == 0 {
		return "none missing"
	}
	return "missing: " + strings.Join(names, ", ")
}

// dropUnused removes the programs of absent events: a tp_btf program for a
// tracepoint the kernel lacks would not load.
func dropUnused(spec *ebpf.CollectionSpec, statuses []EventStatus) {
	used := map[string]bool{}
	for i, st := range statuses {
		if st.Attached {
			used[events[i].prog] = true
		}
	}
	for name := range spec.Programs {
		if !used[name] {
			delete(spec.Programs, name)
		}
	}
	// A legacy event (kmalloc_node) shares its program's code and roles,
	// but a tp_btf program is bound to one tracepoint at load: it gets a
	// copy of its own.
	for i, st := range statuses {
		ev := events[i]
		if st.Attached && ev.btfArgs && ev.name != ev.prog {
			cp := spec.Programs[ev.prog].Copy()
			cp.AttachTo = ev.name
			spec.Programs[ev.name] = cp
		}
	}
}

// attach links every present event; a tp_btf program serving a second
// event (kmalloc_node) is loaded again for it.
func (t *Tracer) attach(statuses []EventStatus) error {
	for i := range statuses {
		st := &statuses[i]
		if !st.Attached {
			continue
		}
		ev := events[i]
		l, err := t.attachOne(ev)
		if err != nil {
			st.Attached, st.Why = false, err.Error()
			continue
		}
		t.links = append(t.links, l)
	}
	if !anyAllocation(statuses) {
		return fmt.Errorf("%w (%s)", errNoTracepoints, missingList(statuses))
	}
	return nil
}

func (t *Tracer) attachOne(ev event) (link.Link, error) {
	prog := t.progs[ev.prog]
	if !ev.btfArgs {
		l, err := link.Tracepoint(ev.group, ev.name, prog, nil)
		if err != nil {
			return nil, fmt.Errorf("attach tracepoint %s:%s: %w", ev.group, ev.name, err)
		}
		return l, nil
	}
	if copied, ok := t.progs[ev.name]; ok {
		prog = copied
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		return nil, fmt.Errorf("attach tp_btf %s: %w", ev.name, err)
	}
	return l, nil
}

// loadError shortens the verifier's log to its last line.
func loadError(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) && len(ve.Log) > 0 {
		return fmt.Errorf("%v (verifier: %s)", ve.Cause, strings.Join(ve.Log[max(0, len(ve.Log)-4):], "; "))
	}
	return err
}

// Close detaches every program and frees the maps.
func (t *Tracer) Close() error {
	var errs []error
	for _, l := range t.links {
		errs = append(errs, l.Close())
	}
	t.links = nil
	if t.coll != nil {
		t.coll.Close()
		t.coll = nil
	}
	return errors.Join(errs...)
}

// monotonicNow is bpf_ktime_get_ns's clock.
func monotonicNow() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}
