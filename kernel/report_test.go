package kernel

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lsan-project/lsan/history"
	"github.com/lsan-project/lsan/ktrace"
	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/suppressions"
	"github.com/lsan-project/lsan/symbolize"
	"github.com/lsan-project/lsan/timeline"
)

const testKallsyms = `ffffffff81000000 T _text
ffffffff81100000 T __bpf_trace_kmem_cache_alloc
ffffffff81200000 T kmem_cache_alloc_noprof
ffffffff81300000 T alloc_empty_file
ffffffff81400000 T do_pipe2
ffffffff81500000 T __kmalloc_noprof
ffffffff81600000 T do_eventfd
ffffffffc0400000 t ext4_alloc_inode	[ext4]
`

// snapshot: 3 pipe files by pid 10 (one young), 1 eventfd kmalloc by pid
// 20, one ext4 object whose stack was not stored (call site only).
func testSnapshot() *ktrace.Snapshot {
	const now = 100e9
	return &ktrace.Snapshot{
		NowNS: now,
		Stacks: map[int32][]uint64{
			1: {0xffffffff81100010, 0xffffffff81200020, 0xffffffff81300030, 0xffffffff81400040},
			2: {0xffffffff81500010, 0xffffffff81600020},
		},
		Objects: []ktrace.Object{
			{Addr: 0x1000, Event: ktrace.EventKmemCacheAlloc, Cache: "filp", BytesReq: 184, BytesAlloc: 192, StackID: 1, PID: 10, Comm: "pipes", TimestampNS: now - 10e9, CallSite: 0xffffffff81300030},
			{Addr: 0x2000, Event: ktrace.EventKmemCacheAlloc, Cache: "filp", BytesReq: 184, BytesAlloc: 192, StackID: 1, PID: 10, Comm: "pipes", TimestampNS: now - 10e9, CallSite: 0xffffffff81300030},
			{Addr: 0x3000, Event: ktrace.EventKmemCacheAlloc, Cache: "filp", BytesReq: 184, BytesAlloc: 192, StackID: 1, PID: 10, Comm: "pipes", TimestampNS: now - 1e9, CallSite: 0xffffffff81300030},
			{Addr: 0x4000, Event: ktrace.EventKmalloc, BytesReq: 48, BytesAlloc: 64, StackID: 2, PID: 20, Comm: "evt", TimestampNS: now - 10e9, CallSite: 0xffffffff81600020},
			{Addr: 0x5000, Event: ktrace.EventKmalloc, BytesReq: 1000, BytesAlloc: 1024, StackID: -1, PID: 20, Comm: "evt", TimestampNS: now - 10e9, CallSite: 0xffffffffc0400010},
		},
	}
}

func testChecker(t *testing.T, cfg Config) (*checker, *[]*Report) {
	t.Helper()
	ks, err := symbolize.ParseKallsyms(strings.NewReader(testKallsyms))
	if err != nil {
		t.Fatal(err)
	}
	var reports []*Report
	cfg.Write = func(r *Report) error { reports = append(reports, r); return nil }
	return &checker{cfg: cfg, ks: ks, prev: map[uint64]Group{}}, &reports
}

func functions(g Group) string {
	var names []string
	for _, f := range g.Stack {
		names = append(names, f.Function)
	}
	return strings.Join(names, " ")
}

func TestGroupsAndAttribution(t *testing.T) {
	groups, procs, _ := buildGroups(testSnapshot(), Filter{}, false)
	if len(groups) != 3 {
		t.Fatalf("%d groups, want 3", len(groups))
	}
	// Largest first: ext4's 1000 bytes, the 3 files, the eventfd.
	if g := groups[0]; g.Bytes != 1000 || g.Count != 1 {
		t.Errorf("group 0 = %d bytes in %d, want 1000 in 1", g.Bytes, g.Count)
	}
	if g := groups[1]; g.Bytes != 552 || g.BytesAlloc != 576 || g.Count != 3 || g.Cache != "filp" || len(g.Processes) != 1 || g.Processes[0].PID != 10 {
		t.Errorf("group 1 = %+v, want 3 filp objects (552/576 bytes) by pid 10", g)
	}
	if len(procs) != 2 || procs[0].PID != 20 || procs[0].Bytes != 1048 || procs[0].Count != 2 || procs[1].PID != 10 || procs[1].Bytes != 552 {
		t.Errorf("processes = %+v, want evt[20] 1048 bytes in 2, then pipes[10] 552", procs)
	}
}

func TestFilters(t *testing.T) {
	for _, c := range []struct {
		name  string
		f     Filter
		count int
	}{
		{"pid", Filter{PID: 10}, 3},
		{"comm", Filter{Comm: "evt"}, 2},
		{"cache", Filter{Cache: "filp"}, 3},
		{"min-size", Filter{MinSize: 100}, 4},
		{"older", Filter{MinAge: 5 * time.Second}, 4},
		{"older and pid", Filter{MinAge: 5 * time.Second, PID: 10}, 2},
	} {
		groups, _, _ := buildGroups(testSnapshot(), c.f, false)
		n := 0
		for _, g := range groups {
			n += g.Count
		}
		if n != c.count {
			t.Errorf("%s: %d objects, want %d", c.name, n, c.count)
		}
	}
}

func TestStacksGrowthSuppressions(t *testing.T) {
	set, _, err := suppressions.Parse("test.supp", strings.NewReader("leak:do_eventfd\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := testChecker(t, Config{Suppressions: set})
	r := &Report{}
	groups, _, first := buildGroups(testSnapshot(), Filter{}, false)
	snap := testSnapshot()
	for i := range groups {
		o := first[groups[i].Key]
		groups[i].Stack = symbolizeStack(c.ks, snap.Stacks[o.StackID], o.CallSite)
	}
	// The tracing frame is cut; the stack without one starts at the call site.
	if got := functions(groups[1]); got != "kmem_cache_alloc_noprof alloc_empty_file do_pipe2" {
		t.Errorf("pipe stack = %s", got)
	}
	if got := groups[0].Stack; len(got) != 1 || got[0].Function != "ext4_alloc_inode" || got[0].Module != "ext4" || got[0].FuncOffset != 0x10 {
		t.Errorf("stack not stored: %+v, want the call site ext4_alloc_inode+0x10 in ext4", got)
	}
	kept := c.suppress(r, groups)
	if len(kept) != 2 || len(r.Suppressed) != 1 || r.Suppressed[0].Count != 1 || r.Suppressed[0].Bytes != 48 {
		t.Errorf("suppress: kept %d, used %+v; want 2 kept, do_eventfd hiding 1 object of 48 bytes", len(kept), r.Suppressed)
	}
	c.growth(kept)
	more := append([]Group(nil), kept...)
	more[1].Count, more[1].Bytes = 5, 920
	c.growth(more)
	if more[1].GrowthCount != 2 || more[1].GrowthBytes != 368 || more[0].GrowthCount != 0 {
		t.Errorf("growth = %+v / %+v, want +2 objects, +368 bytes on the files", more[0], more[1])
	}
}

func TestWriters(t *testing.T) {
	ks, _ := symbolize.ParseKallsyms(strings.NewReader(testKallsyms))
	groups, procs, first := buildGroups(testSnapshot(), Filter{Cache: "filp"}, false)
	snap := testSnapshot()
	for i := range groups {
		o := first[groups[i].Key]
		groups[i].Stack = symbolizeStack(ks, snap.Stacks[o.StackID], o.CallSite)
	}
	r := &Report{Time: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), Groups: groups, Processes: procs, Filter: Filter{Cache: "filp"}, Objects: 5,
		Counters: ktrace.Counters{Allocs: 7, Frees: 2}}
	var text bytes.Buffer
	if err := WriteText(&text, r); err != nil {
		t.Fatal(err)
	}
	want := `
==kernel==lsan: [2026-12-03 10:00:00] top kernel stacks with live objects (cache filp):

Live kernel objects: 552 byte(s) (576 allocated) in 3 object(s) from kmem_cache_alloc (cache filp):
    #0 0xffffffff81200020 in kmem_cache_alloc_noprof+0x20 (vmlinux+0x200020)
    #1 0xffffffff81300030 in alloc_empty_file+0x30 (vmlinux+0x300030)
    #2 0xffffffff81400040 in do_pipe2+0x40 (vmlinux+0x400040)
  allocated by pipes[10] (3)

Live kernel memory by allocating process:
       bytes    allocated   objects      pid  comm
         552          576         3       10  pipes

lsan: 5 live object(s) tracked; since the start 7 allocation(s) recorded, 2 freed; dropped 0 allocation(s) (map full: raise --max-objects), 0 stack(s), 0 event(s) missed

SUMMARY: lsan kernel: 552 byte(s) (576 allocated) live in 3 object(s).
`
	if text.String() != want {
		t.Errorf("text report:\n%s\nwant:\n%s", text.String(), want)
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Mode  string `json:"mode"`
		Leaks []struct {
			Count int    `json:"count"`
			Cache string `json:"cache"`
			Stack []struct {
				Function, Offset, Module string
			} `json:"stack"`
		} `json:"leaks"`
		Complete bool `json:"complete"`
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Mode != "kernel" || !got.Complete || len(got.Leaks) != 1 || got.Leaks[0].Count != 3 || got.Leaks[0].Cache != "filp" ||
		got.Leaks[0].Stack[2].Function != "do_pipe2" || got.Leaks[0].Stack[2].Offset != "0x40" || got.Leaks[0].Stack[2].Module != "vmlinux" {
		t.Errorf("JSON report = %s", js.String())
	}
}

// TestHistory: the checks go through the run's history as report models:
// the group that rises at every check is judged growing, --only-growing
// hides the rest, and the model carries the kernel frames.
func TestHistory(t *testing.T) {
	h := &history.History{Growth: timeline.Options{Window: 2, MinBytes: 1}, OnlyGrowing: true}
	c, _ := testChecker(t, Config{History: h, Filter: Filter{PID: 10}})
	snap := testSnapshot()
	var r *Report
	var groups []Group
	var m *report.Report
	for i := 0; i < 3; i++ {
		var first map[uint64]*ktrace.Object
		groups, _, first = buildGroups(snap, Filter{}, false)
		for j := range groups {
			o := first[groups[j].Key]
			groups[j].Stack = symbolizeStack(c.ks, snap.Stacks[o.StackID], o.CallSite)
			if groups[j].Cache == "filp" {
				groups[j].Count += i
				groups[j].Bytes += uint64(i) * 184
			}
		}
		r = &Report{Time: time.Unix(int64(100+i), 0)}
		m = c.model(r, groups)
		groups = c.observe(r, m, groups)
	}
	if len(groups) != 1 || groups[0].Cache != "filp" || groups[0].Trend == nil || groups[0].Trend.Verdict != report.Growing {
		t.Fatalf("groups after 3 checks: %+v; want the filp group alone, growing", groups)
	}
	if r.Hidden != 2 || r.History == nil || len(r.History.Times) != 3 {
		t.Errorf("hidden %d, history %+v; want 2 hidden by --only-growing, 3 checks", r.Hidden, r.History)
	}
	if m.PID != 10 || m.Mode != report.ModeOutstanding || len(m.Groups) != 1 || m.Groups[0].Bytes != 3*184+2*184 {
		t.Errorf("model = pid %d, mode %s, groups %+v", m.PID, m.Mode, m.Groups)
	}
	if fs := m.Groups[0].Stack; len(fs) != 3 || fs[1].Function != "alloc_empty_file" || m.Groups[0].PCs[1] != 0xffffffff81300030 {
		t.Errorf("model frames = %+v", fs)
	}
	var text bytes.Buffer
	if err := WriteText(&text, &Report{Groups: groups, History: r.History, Hidden: r.Hidden, HiddenWhy: r.HiddenWhy}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"    trend: growing, 552 -> 920 byte(s) over the last 2 check(s), +184.0 byte(s)/s\n", "2 more group(s) left out: not growing (--only-growing).\n"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
}
