package kernel

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lsan-project/lsan/ktrace"
	"github.com/lsan-project/lsan/report"
)

// Writer returns the function that writes reports to w in format (text or
// json), or an error naming the format.
func Writer(w io.Writer, format string) (func(*Report) error, error) {
	switch format {
	case "text":
		return func(r *Report) error { return WriteText(w, r) }, nil
	case "json":
		return func(r *Report) error { return WriteJSON(w, r) }, nil
	}
	return nil, fmt.Errorf("--format %q: lsan kernel writes text, json, html or pprof", format)
}

// WriteText writes r in the layout of lsan's outstanding reports (LSan's
// frames), with the kernel's function+offset and module in each frame,
// then the per-process table.
func WriteText(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "\n==kernel==lsan: [%s] top kernel stacks with live objects", r.Time.Format("2006-01-02 15:04:05"))
	if d := r.Filter.MinAge; d > 0 {
		fmt.Fprintf(bw, " older than %s", d)
	}
	fmt.Fprintf(bw, "%s:\n\n", filterText(r.Filter))
	for _, g := range r.Groups {
		fmt.Fprintf(bw, "Live kernel objects: %d byte(s) (%d allocated) in %d object(s) from %s%s%s:\n",
			g.Bytes, g.BytesAlloc, g.Count, g.Event, cacheText(g.Cache), growthText(g))
		for i, f := range g.Stack {
			fmt.Fprintf(bw, "    #%d 0x%x%s\n", i, f.PC, kernelFrameText(f))
		}
		if t := report.TrendText(r.History, g.Trend); t != "" {
			fmt.Fprintf(bw, "    trend: %s\n", t)
		}
		fmt.Fprintf(bw, "  allocated by %s\n\n", processesText(g.Processes, 3))
	}
	if r.Omitted > 0 {
		fmt.Fprintf(bw, "Omitting %d more stack(s).\n\n", r.Omitted)
	}
	if r.Hidden > 0 {
		fmt.Fprintf(bw, "%d more group(s) left out: %s.\n\n", r.Hidden, r.HiddenWhy)
	}
	writeSuppressed(bw, r.Suppressed)
	writeProcesses(bw, r.Processes, 10)
	writeCounters(bw, r)
	req, alloc := r.TotalBytes()
	fmt.Fprintf(bw, "SUMMARY: lsan kernel: %d byte(s) (%d allocated) live in %d object(s).\n", req, alloc, r.TotalCount())
	return bw.Flush()
}

func filterText(f Filter) string {
	var parts []string
	if f.PID != 0 {
		parts = append(parts, fmt.Sprintf("pid %d", f.PID))
	}
	if f.Comm != "" {
		parts = append(parts, "comm "+f.Comm)
	}
	if f.Cache != "" {
		parts = append(parts, "cache "+f.Cache)
	}
	if f.MinSize > 0 {
		parts = append(parts, fmt.Sprintf("at least %d bytes", f.MinSize))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func cacheText(cache string) string {
	if cache == "" {
		return ""
	}
	return " (cache " + cache + ")"
}

func growthText(g Group) string {
	switch {
	case g.New:
		return ", new since the last check"
	case g.GrowthCount != 0:
		return fmt.Sprintf(", %+d object(s) since the last check", g.GrowthCount)
	}
	return ""
}

// kernelFrameText prints a frame as the kernel does, "func+0xoff", and the
// module with the offset in it, as LSan prints "(module+0xoff)".
func kernelFrameText(f Frame) string {
	if f.Function == "" {
		return " (<unknown module>)"
	}
	return fmt.Sprintf(" in %s+0x%x (%s+0x%x)", f.Function, f.FuncOffset, f.Module, f.ModuleOffset)
}

func processesText(ps []ProcessUsage, n int) string {
	var parts []string
	for i, p := range ps {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(ps)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%s[%d] (%d)", p.Comm, p.PID, p.Count))
	}
	return strings.Join(parts, ", ")
}

func writeSuppressed(w *bufio.Writer, used []Suppressed) {
	if len(used) == 0 {
		return
	}
	dashes := strings.Repeat("-", 53)
	fmt.Fprintf(w, "%s\nSuppressions used:\n  count      bytes template\n", dashes)
	for _, s := range used {
		fmt.Fprintf(w, "%7d %10d %s\n", s.Count, s.Bytes, strings.TrimPrefix(s.Pattern, "leak:"))
	}
	fmt.Fprintf(w, "%s\n\n", dashes)
}

// writeProcesses answers "which process holds kernel memory": every
// object that passed the filters, not only the groups shown.
func writeProcesses(w *bufio.Writer, ps []ProcessUsage, n int) {
	if len(ps) == 0 {
		return
	}
	w.WriteString("Live kernel memory by allocating process:\n")
	fmt.Fprintf(w, "%12s %12s %9s %8s  %s\n", "bytes", "allocated", "objects", "pid", "comm")
	for i, p := range ps {
		if i == n {
			fmt.Fprintf(w, "  ... %d more process(es)\n", len(ps)-n)
			break
		}
		fmt.Fprintf(w, "%12d %12d %9d %8d  %s\n", p.Bytes, p.BytesAlloc, p.Count, p.PID, p.Comm)
	}
	w.WriteString("\n")
}

// writeCounters: nothing is dropped silently.
func writeCounters(w *bufio.Writer, r *Report) {
	c := r.Counters
	if r.NoStacks {
		w.WriteString("lsan: --no-stacks: objects grouped by the function that called the allocator.\n")
	}
	if r.SampleRate > 1 {
		fmt.Fprintf(w, "lsan: sampled: 1 in %d allocations tracked; sizes and counts are of the sampled objects only.\n", r.SampleRate)
	}
	fmt.Fprintf(w, "lsan: %d live object(s) tracked; since the start %d allocation(s) recorded, %d freed; dropped %d allocation(s) (map full: raise --max-objects), %d stack(s), %d event(s) missed\n",
		r.Objects, c.Allocs, c.Frees, c.AllocDrops, c.StackDrops, c.Missed)
	var missing []string
	for _, e := range r.Events {
		if !e.Attached && !e.Legacy {
			missing = append(missing, e.Name)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(w, "lsan: not traced on this kernel: %s\n", strings.Join(missing, ", "))
	}
	w.WriteString("\n")
}

// The JSON shapes of docs/kernel.md: CONTRACT.md's report, extended.
type jsonReport struct {
	PID        uint32               `json:"pid"`
	Time       string               `json:"time"`
	Mode       string               `json:"mode"`
	Leaks      []jsonGroup          `json:"leaks"`
	Processes  []ProcessUsage       `json:"processes"`
	Suppressed []Suppressed         `json:"suppressed"`
	Stats      jsonStats            `json:"stats"`
	Dropped    jsonDropped          `json:"dropped"`
	Complete   bool                 `json:"complete"`
	Summary    jsonSummary          `json:"summary"`
	Events     []ktrace.EventStatus `json:"events"`
	Filter     jsonFilter           `json:"filter"`
	Omitted    int                  `json:"omitted,omitempty"`
	Hidden     int                  `json:"hidden,omitempty"`
	HiddenWhy  string               `json:"hidden_why,omitempty"`
	SampleRate uint32               `json:"sample_rate,omitempty"`
	MinAgeMS   int64                `json:"min_age_ms,omitempty"`
	NoStacks   bool                 `json:"no_stacks,omitempty"`
	Final      bool                 `json:"final,omitempty"`
}

type jsonGroup struct {
	Kind        string         `json:"kind"`
	Bytes       uint64         `json:"bytes"`
	BytesAlloc  uint64         `json:"bytes_allocated"`
	Count       int            `json:"count"`
	Event       string         `json:"event"`
	Cache       string         `json:"cache,omitempty"`
	GrowthCount int            `json:"growth_count"`
	GrowthBytes int64          `json:"growth_bytes"`
	New         bool           `json:"new,omitempty"`
	Trend       *jsonTrend     `json:"trend,omitempty"`
	Stack       []jsonFrame    `json:"stack"`
	Processes   []ProcessUsage `json:"processes"`
	Objects     []ObjectRef    `json:"objects,omitempty"`
}

// jsonTrend is a group's growth verdict over the checks so far.
type jsonTrend struct {
	Verdict     string   `json:"verdict"`
	BytesPerSec float64  `json:"bytes_per_sec"`
	Bytes       []uint64 `json:"bytes"`
}

type jsonFrame struct {
	PC           string `json:"pc"`
	Function     string `json:"function"`
	Offset       string `json:"offset,omitempty"`
	Module       string `json:"module,omitempty"`
	ModuleOffset string `json:"module_offset,omitempty"`
}

type jsonStats struct {
	Blocks int    `json:"blocks"`
	Allocs uint64 `json:"allocs_since_start"`
	Frees  uint64 `json:"frees_since_start"`
}

type jsonDropped struct {
	Allocs uint64 `json:"allocs"`
	Stacks uint64 `json:"stacks"`
	Missed uint64 `json:"missed"`
}

type jsonSummary struct {
	Bytes      uint64 `json:"bytes"`
	BytesAlloc uint64 `json:"bytes_allocated"`
	Count      int    `json:"count"`
}

type jsonFilter struct {
	Comm    string `json:"comm,omitempty"`
	Cache   string `json:"cache,omitempty"`
	MinSize uint64 `json:"min_size,omitempty"`
}

// WriteJSON writes r as one JSON object on one line.
func WriteJSON(w io.Writer, r *Report) error {
	req, alloc := r.TotalBytes()
	out := jsonReport{
		PID: r.Filter.PID, Time: r.Time.UTC().Format(time.RFC3339Nano), Mode: "kernel",
		Leaks: []jsonGroup{}, Processes: r.Processes, Suppressed: r.Suppressed,
		Stats:    jsonStats{Blocks: r.Objects, Allocs: r.Counters.Allocs, Frees: r.Counters.Frees},
		Dropped:  jsonDropped{Allocs: r.Counters.AllocDrops, Stacks: r.Counters.StackDrops, Missed: r.Counters.Missed},
		Complete: r.Complete(), Summary: jsonSummary{Bytes: req, BytesAlloc: alloc, Count: r.TotalCount()},
		Events: r.Events, Filter: jsonFilter{Comm: r.Filter.Comm, Cache: r.Filter.Cache, MinSize: r.Filter.MinSize},
		Omitted: r.Omitted, Hidden: r.Hidden, HiddenWhy: r.HiddenWhy, MinAgeMS: r.Filter.MinAge.Milliseconds(), Final: r.Final, NoStacks: r.NoStacks,
	}
	if r.SampleRate > 1 {
		out.SampleRate = r.SampleRate
	}
	if out.Processes == nil {
		out.Processes = []ProcessUsage{}
	}
	if out.Suppressed == nil {
		out.Suppressed = []Suppressed{}
	}
	for _, g := range r.Groups {
		jg := jsonGroup{
			Kind: "outstanding", Bytes: g.Bytes, BytesAlloc: g.BytesAlloc, Count: g.Count, Event: g.Event.String(),
			Cache: g.Cache, GrowthCount: g.GrowthCount, GrowthBytes: g.GrowthBytes, New: g.New,
			Stack: []jsonFrame{}, Processes: g.Processes, Objects: g.Objects,
		}
		if t := g.Trend; t != nil && r.History != nil && len(r.History.Times) >= 2 {
			jg.Trend = &jsonTrend{Verdict: string(t.Verdict), BytesPerSec: t.BytesPerSec, Bytes: t.Bytes}
		}
		for _, f := range g.Stack {
			jf := jsonFrame{PC: fmt.Sprintf("0x%x", f.PC), Function: f.Function}
			if f.Function != "" {
				jf.Offset = fmt.Sprintf("0x%x", f.FuncOffset)
				jf.Module = f.Module
				jf.ModuleOffset = fmt.Sprintf("0x%x", f.ModuleOffset)
			}
			jg.Stack = append(jg.Stack, jf)
		}
		out.Leaks = append(out.Leaks, jg)
	}
	data, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}
