package kernel

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"time"

	"github.com/lsan-project/lsan/ktrace"
	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/symbolize"
)

// Report is one check of the live kernel objects.
type Report struct {
	Time   time.Time
	Groups []Group
	// Omitted counts the groups left out by --top.
	Omitted int
	// Processes: live kernel bytes by the process that allocated them,
	// largest first (every object that passed the filters, not only the
	// shown groups).
	Processes  []ProcessUsage
	Suppressed []Suppressed
	Filter     Filter
	Events     []ktrace.EventStatus
	Counters   ktrace.Counters
	// Objects is the number of live objects in the map (before filters).
	Objects    int
	SampleRate uint32
	// NoStacks: stacks were not taken (--no-stacks); groups are by call site.
	NoStacks bool
	Final    bool
	// Hidden counts the groups a history filter left out (--only-growing),
	// HiddenWhy says which; History is the series this check ends (nil
	// without a history).
	Hidden    int
	HiddenWhy string
	History   *report.History
	// Model is the check in lsan's report model (html and pprof write it).
	Model *report.Report
}

// Group is the live objects allocated from one kernel stack by one
// tracepoint (and, for kmem_cache_alloc, from one cache).
type Group struct {
	Key        uint64
	Event      ktrace.Event
	Cache      string
	Bytes      uint64 // requested
	BytesAlloc uint64
	Count      int
	// Growth is Count and Bytes minus the previous check's (0 on the
	// first check, or for a new group: then New is set).
	GrowthCount int
	GrowthBytes int64
	New         bool
	// Trend is the group's series and growth verdict over the checks
	// (nil without a history).
	Trend *report.Trend
	Stack []Frame
	// Processes that allocated this group's objects, most objects first.
	Processes []ProcessUsage
	Objects   []ObjectRef
}

// Frame is a symbolized kernel stack frame.
type Frame = symbolize.KernelFrame

// ObjectRef is one object of a group (--report-objects).
type ObjectRef struct {
	Addr  uint64 `json:"addr"`
	Size  uint64 `json:"size"`
	PID   uint32 `json:"pid"`
	AgeMS int64  `json:"age_ms"`
}

// ProcessUsage is the live kernel memory one process allocated.
type ProcessUsage struct {
	PID        uint32 `json:"pid"`
	Comm       string `json:"comm"`
	Bytes      uint64 `json:"bytes"`
	BytesAlloc uint64 `json:"bytes_allocated"`
	Count      int    `json:"count"`
}

// Suppressed is a suppression rule that hid groups in this check.
type Suppressed struct {
	Pattern string `json:"pattern"`
	Count   int    `json:"count"`
	Bytes   uint64 `json:"bytes"`
}

// Filter selects the objects a report shows.
type Filter struct {
	PID     uint32
	Comm    string
	Cache   string
	MinSize uint64
	MinAge  time.Duration
}

// keep says whether an object passes the filter at time nowNS.
func (f Filter) keep(o *ktrace.Object, nowNS uint64) bool {
	switch {
	case f.PID != 0 && o.PID != f.PID:
		return false
	case f.Comm != "" && o.Comm != f.Comm:
		return false
	case f.Cache != "" && o.Cache != f.Cache:
		return false
	case o.BytesReq < f.MinSize:
		return false
	}
	if f.MinAge > 0 {
		if o.TimestampNS > nowNS || nowNS-o.TimestampNS < uint64(f.MinAge.Nanoseconds()) {
			return false
		}
	}
	return true
}

// groupKey identifies a group: the stack, the event, the cache; objects
// without a stored stack are grouped by their call site.
func groupKey(o *ktrace.Object) uint64 {
	h := fnv.New64a()
	site := uint64(0)
	if o.StackID < 0 {
		site = o.CallSite
	}
	fmt.Fprintf(h, "%d/%d/%s/%x", o.StackID, o.Event, o.Cache, site)
	return h.Sum64()
}

// buildGroups groups the objects that pass the filter, and sums each
// process's share.
func buildGroups(snap *ktrace.Snapshot, f Filter, keepObjects bool) ([]Group, []ProcessUsage, map[uint64]*ktrace.Object) {
	index := map[uint64]int{}
	first := map[uint64]*ktrace.Object{}
	var groups []Group
	procs := map[uint32]*ProcessUsage{}
	groupProcs := map[uint64]map[uint32]*ProcessUsage{}
	for i := range snap.Objects {
		o := &snap.Objects[i]
		if !f.keep(o, snap.NowNS) {
			continue
		}
		k := groupKey(o)
		gi, ok := index[k]
		if !ok {
			gi = len(groups)
			index[k] = gi
			first[k] = o
			groups = append(groups, Group{Key: k, Event: o.Event, Cache: o.Cache})
			groupProcs[k] = map[uint32]*ProcessUsage{}
		}
		g := &groups[gi]
		g.Bytes += o.BytesReq
		g.BytesAlloc += o.BytesAlloc
		g.Count++
		if keepObjects {
			g.Objects = append(g.Objects, ObjectRef{Addr: o.Addr, Size: o.BytesReq, PID: o.PID, AgeMS: int64(snap.NowNS-o.TimestampNS) / 1e6})
		}
		addUsage(procs, o)
		addUsage(groupProcs[k], o)
	}
	for i := range groups {
		groups[i].Processes = sortedUsage(groupProcs[groups[i].Key])
	}
	sort.SliceStable(groups, func(i, j int) bool {
		a, b := groups[i], groups[j]
		if a.Bytes != b.Bytes {
			return a.Bytes > b.Bytes
		}
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Key < b.Key
	})
	return groups, sortedUsage(procs), first
}

func addUsage(m map[uint32]*ProcessUsage, o *ktrace.Object) {
	u := m[o.PID]
	if u == nil {
		u = &ProcessUsage{PID: o.PID, Comm: o.Comm}
		m[o.PID] = u
	}
	u.Bytes += o.BytesReq
	u.BytesAlloc += o.BytesAlloc
	u.Count++
}

func sortedUsage(m map[uint32]*ProcessUsage) []ProcessUsage {
	out := make([]ProcessUsage, 0, len(m))
	for _, u := range m {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bytes != out[j].Bytes {
			return out[i].Bytes > out[j].Bytes
		}
		return out[i].PID < out[j].PID
	})
	return out
}

// tracingFrame: frames of the tracing machinery itself, above the
// allocator (the BPF program, the tracepoint's iterator). They say nothing
// about who allocated.
func tracingFrame(name string) bool {
	for _, p := range []string{"bpf_prog_", "bpf_trace_run", "__bpf_trace_", "__traceiter_", "perf_trace_", "bpf_get_stack", "__bpf_prog_run", "trace_call_bpf", "perf_syscall"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// symbolizeStack turns an object's kernel stack into frames, without the
// tracing machinery; when the stack was not stored, or does not contain
// the call site, the call site comes first so the caller is never lost.
func symbolizeStack(ks *symbolize.Kallsyms, pcs []uint64, callSite uint64) []Frame {
	var frames []Frame
	for _, pc := range pcs {
		f := ks.Lookup(pc)
		if len(frames) == 0 && tracingFrame(f.Function) {
			continue
		}
		frames = append(frames, f)
	}
	if callSite == 0 {
		return frames
	}
	site := ks.Lookup(callSite)
	for _, f := range frames {
		if f.Function != "" && f.Function == site.Function {
			return frames
		}
	}
	return append([]Frame{site}, frames...)
}

// TotalBytes and TotalCount sum the shown groups.
func (r *Report) TotalBytes() (req, alloc uint64) {
	for _, g := range r.Groups {
		req += g.Bytes
		alloc += g.BytesAlloc
	}
	return req, alloc
}

func (r *Report) TotalCount() int {
	n := 0
	for _, g := range r.Groups {
		n += g.Count
	}
	return n
}

// Complete says whether nothing was lost since the start.
func (r *Report) Complete() bool {
	c := r.Counters
	return c.AllocDrops == 0 && c.StackDrops == 0 && c.Missed == 0
}
