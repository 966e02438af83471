package bpf

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
)

// probeSite is one probed instruction: found once, when the tracer
// attaches, and probed in every traced process (a forked child runs the
// same code as its parent).
type probeSite struct {
	index  uint16 // into the tracer's table: the cookie, and Block.Fn
	fn     AllocatorFunc
	object *objectFile
	// offset is the file offset of the probed instruction.
	offset uint64
	// cookie is the attach cookie: the function's index and signature
	// (funcs.go), or an exit site's kind.
	cookie uint64
	probe  Probe
	// exits are the function's exit sites (exits.go), known when
	// exitsKnown (possibly none: every path tail-jumps into another probed
	// function); else an allocating function keeps its uretprobe.
	exits      []exitSite
	exitsKnown bool
}

// objectFile keeps a probed file open, so that a process forked long
// after the first one (which may be gone by then, with its /proc entries)
// is probed in the same inode: uprobes live on inodes, and the kernel
// resolves /proc/self/fd/N to the open file.
type objectFile struct {
	file *os.File
	path string // for messages: the path as the target sees it
}

func (o *objectFile) attachPath() string { return fmt.Sprintf("/proc/self/fd/%d", o.file.Fd()) }

// planProbes decides every probe site: which functions are probed, in
// which object, at which instruction. Two names bound to the same code
// (aliases) are probed once, or every call would be seen twice.
func (t *Tracer) planProbes() error {
	defer t.closeExitFinders()
	t.fnAddrs = make([]uint64, len(t.funcs))
	type site struct {
		path string
		off  uint64
	}
	done := map[site]bool{}
	t.objectFiles = map[string]*objectFile{}
	for i, fn := range t.funcs {
		b, ok := t.allocator.Bindings[fn.Name]
		if fn.sig.op == opExit && !t.opts.StopAtExit || fn.sig.op == opMapsChanged && t.opts.Unwind == UnwindFP {
			continue
		}
		if len(t.opts.OnlyFuncs) > 0 && !slices.Contains(t.opts.OnlyFuncs, fn.Name) {
			continue
		}
		if t.opts.LifecycleOnly && fn.sig.op != opExit && fn.sig.op != opMapsChanged {
			if ok {
				t.fnAddrs[i] = b.RuntimeAddr()
			}
			continue
		}
		if !ok {
			if fn.Required {
				return fmt.Errorf("pid %d: %s", t.opts.PID, notFound(fn))
			}
			continue
		}
		t.fnAddrs[i] = b.RuntimeAddr()
		s := site{b.Object.OpenPath, b.FileOffset}
		if done[s] {
			continue
		}
		done[s] = true
		obj, err := t.openObject(b.Object)
		if err != nil {
			return err
		}
		place := placeBinding(b, fn.sig, t.opts.Placement)
		probe := Probe{Func: fn.Name, Object: b.Object.Path, Offset: b.FileOffset, Placement: place}
		site := probeSite{index: uint16(i), fn: fn, object: obj, offset: b.FileOffset + place.Offset, probe: probe,
			cookie: t.entrySignature(fn, b).cookie(uint16(i))}
		t.probes = append(t.probes, probe)
		if fn.sig.allocates() && !t.opts.NoReturnProbes {
			site.exits, probe.ReturnProbeWhy = t.exitsOf(b)
			site.exitsKnown = probe.ReturnProbeWhy == ""
			probe.Returns, probe.Exits = true, len(site.exits)
			t.probes = append(t.probes, probe)
		}
		t.sites = append(t.sites, site)
	}
	return nil
}

// entrySignature is fn's signature as its entry probe tells it to the
// BPF program: glibc's frees may read the chunk header for the size of a
// block allocated before the attach; no other free may (the word before a
// pool object is its neighbour's data).
func (t *Tracer) entrySignature(fn AllocatorFunc, b Binding) signature {
	sig := fn.sig
	if sig.op == opFree && isGlibc(b.Object) && fn.Family != "user" {
		sig.flags |= sigHeaderSize
	}
	return sig
}

// notFound says that a required function is not in the target.
func notFound(fn AllocatorFunc) string {
	if fn.Family == familyUser {
		where := "any loaded object"
		if fn.Object != "" {
			where = fn.Object + " (or no such object is mapped)"
		}
		return fmt.Sprintf("function %s not found in %s, neither exported nor in a symbol table (stripped binary?)", fn, where)
	}
	if fn.Object != "" {
		return fmt.Sprintf("%s not found in %s", fn.Name, fn.Object)
	}
	return fmt.Sprintf("%s not found in any loaded object", fn.Name)
}

// exitsOf finds the exit sites of an allocating function, or says why it
// keeps its uretprobe (exits.go).
func (t *Tracer) exitsOf(b Binding) ([]exitSite, string) {
	if !t.opts.ExitProbes {
		return nil, "uretprobes chosen"
	}
	if runtime.GOARCH != "amd64" {
		return nil, "exit probes are implemented for x86-64 only"
	}
	x, err := t.exitFinderFor(b.Object)
	if err != nil {
		return nil, err.Error()
	}
	sites, err := x.exits(b.Value, b.Size)
	if err != nil {
		return nil, err.Error()
	}
	return sites, ""
}

// exitFinderFor opens an object's exit finder once.
func (t *Tracer) exitFinderFor(obj *MappedObject) (*exitFinder, error) {
	if x, ok := t.exitFinders[obj.OpenPath]; ok {
		return x, nil
	}
	f, err := elf.Open(obj.OpenPath)
	if err != nil {
		return nil, err
	}
	probed := map[uint64]string{}
	for _, fn := range t.funcs {
		if b, ok := t.allocator.Bindings[fn.Name]; ok && fn.sig.allocates() && b.Object == obj {
			probed[b.Value] = fn.Name
		}
	}
	x, err := newExitFinder(f, probed, t.allocatingNames())
	if err != nil {
		f.Close()
		return nil, err
	}
	t.exitFinders[obj.OpenPath] = x
	return x, nil
}

// closeExitFinders releases the files the exit analysis read.
func (t *Tracer) closeExitFinders() {
	for path, x := range t.exitFinders {
		x.f.Close()
		delete(t.exitFinders, path)
	}
}

// allocatingNames are the allocating functions bound in the target, in any
// object: a tail jump through the PLT into one ends at its exits.
func (t *Tracer) allocatingNames() map[string]bool {
	out := map[string]bool{}
	for _, fn := range t.funcs {
		if _, ok := t.allocator.Bindings[fn.Name]; ok && fn.sig.allocates() {
			out[fn.Name] = true
		}
	}
	return out
}

func (t *Tracer) openObject(m *MappedObject) (*objectFile, error) {
	if o, ok := t.objectFiles[m.OpenPath]; ok {
		return o, nil
	}
	f, err := os.Open(m.OpenPath)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", m.Path, err)
	}
	o := &objectFile{file: f, path: m.Path}
	t.objectFiles[m.OpenPath] = o
	t.files = append(t.files, o)
	return o, nil
}

// useMultiLinks says whether the kernel has uprobe_multi links (Linux
// 6.6): one link carries all of a program's probes in one object, and
// detaching it waits for one RCU grace period instead of one per probe,
// serialized on a kernel-wide lock (about 2 s for lsan's ~20 probes).
func useMultiLinks() bool { return features.HaveBPFLinkUprobeMulti() == nil }

// setMultiAttachType marks the uprobe programs for uprobe_multi links,
// before they are loaded.
func setMultiAttachType(spec *ebpf.CollectionSpec) {
	for _, p := range spec.Programs {
		if p.Type == ebpf.Kprobe {
			p.AttachType = ebpf.AttachTraceUprobeMulti
		}
	}
}

// attachProcess puts every probe site in place for one process (pid 0:
// every process, which only tests use).
func (t *Tracer) attachProcess(pid int) ([]link.Link, error) {
	if t.multi {
		return t.attachMulti(pid)
	}
	return t.attachSingle(pid)
}

// exitKey is one exit site of one object.
type exitKey struct {
	object *objectFile
	offset uint64
}

// multiKey groups probe sites into one uprobe_multi link.
type multiKey struct {
	object *objectFile
	prog   *ebpf.Program
	ret    bool
}

func (t *Tracer) attachMulti(pid int) ([]link.Link, error) {
	var order []multiKey
	groups := map[multiKey]*link.UprobeMultiOptions{}
	add := func(k multiKey, s probeSite) {
		g, ok := groups[k]
		if !ok {
			g = &link.UprobeMultiOptions{PID: uint32(pid)}
			groups[k] = g
			order = append(order, k)
		}
		g.Addresses = append(g.Addresses, s.offset)
		g.Cookies = append(g.Cookies, s.cookie)
	}
	exitsAdded := map[exitKey]bool{}
	for _, s := range t.sites {
		add(multiKey{s.object, t.programFor(s.fn.sig), false}, s)
		if !s.fn.sig.allocates() || t.opts.NoReturnProbes {
			continue
		}
		if !s.exitsKnown {
			add(multiKey{s.object, t.objs.AllocReturn, true}, s)
			continue
		}
		// Functions that end in the same code (glibc's memalign family
		// in _mid_memalign) share its exit sites: each is probed once.
		for _, e := range s.exits {
			if k := (exitKey{s.object, e.offset}); !exitsAdded[k] {
				exitsAdded[k] = true
				add(multiKey{s.object, t.objs.AllocExit, false}, probeSite{cookie: uint64(e.kind), offset: e.offset})
			}
		}
	}
	var links []link.Link
	for _, k := range order {
		l, err := attachMultiGroup(k, groups[k])
		if err != nil {
			closeLinks(links)
			return nil, err
		}
		links = append(links, l)
	}
	return links, nil
}

func attachMultiGroup(k multiKey, opts *link.UprobeMultiOptions) (link.Link, error) {
	ex, err := link.OpenExecutable(k.object.attachPath())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", k.object.path, err)
	}
	what := k.prog.String()
	if k.ret {
		l, err := ex.UretprobeMulti(nil, k.prog, opts)
		if err != nil {
			return nil, explainAttachError(what+" (return)", k.object.path, err)
		}
		return l, nil
	}
	l, err := ex.UprobeMulti(nil, k.prog, opts)
	if err != nil {
		return nil, explainAttachError(what, k.object.path, err)
	}
	return l, nil
}

// attachSingle is the fallback for kernels without uprobe_multi: one
// perf-event uprobe per site.
func (t *Tracer) attachSingle(pid int) ([]link.Link, error) {
	var links []link.Link
	exitsAdded := map[exitKey]bool{}
	for _, s := range t.sites {
		ls, err := t.attachSite(pid, s, exitsAdded)
		links = append(links, ls...)
		if err != nil {
			closeLinks(links)
			return nil, err
		}
	}
	return links, nil
}

func (t *Tracer) attachSite(pid int, s probeSite, exitsAdded map[exitKey]bool) ([]link.Link, error) {
	ex, err := link.OpenExecutable(s.object.attachPath())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", s.object.path, err)
	}
	// With a PID, the kernel installs the breakpoint in that process only:
	// others using the same library run at full speed.
	opts := &link.UprobeOptions{Address: s.offset, Cookie: s.cookie, PID: pid}
	l, err := ex.Uprobe(s.fn.Name, t.programFor(s.fn.sig), opts)
	if err != nil {
		return nil, explainAttachError(s.fn.Name, s.object.path, err)
	}
	links := []link.Link{l}
	if !s.fn.sig.allocates() || t.opts.NoReturnProbes {
		return links, nil
	}
	for _, e := range s.exits {
		// Functions that end in the same code share its exits: one probe.
		if k := (exitKey{s.object, e.offset}); exitsAdded[k] {
			continue
		} else {
			exitsAdded[k] = true
		}
		exit := &link.UprobeOptions{Address: e.offset, Cookie: uint64(e.kind), PID: pid}
		l, err := ex.Uprobe(s.fn.Name, t.objs.AllocExit, exit)
		if err != nil {
			return links, explainAttachError(s.fn.Name+" (exit)", s.object.path, err)
		}
		links = append(links, l)
	}
	if s.exitsKnown {
		return links, nil
	}
	l, err = ex.Uretprobe(s.fn.Name, t.objs.AllocReturn, opts)
	if err != nil {
		return links, explainAttachError(s.fn.Name+" (return)", s.object.path, err)
	}
	return append(links, l), nil
}

// closeLinks detaches links concurrently: each detach waits for an RCU
// grace period, and waiting for them one by one adds up.
func closeLinks(links []link.Link) error {
	errs := make([]error, len(links))
	var wg sync.WaitGroup
	for i, l := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.Close()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
