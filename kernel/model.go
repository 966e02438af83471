package kernel

import (
	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/symbolize"
)

// model is the check as lsan's report model: outstanding groups with
// their symbolized kernel stacks. It is what the run's history records
// and judges (series, growth, --only-growing) and what the html and pprof
// formats write, so that kernel checks go through the same timeline,
// recording and renderers as a process's.
func (c *checker) model(r *Report, groups []Group) *report.Report {
	m := &report.Report{
		PID: int(c.cfg.Filter.PID), Time: r.Time, Mode: report.ModeOutstanding,
		SampleRate: r.SampleRate, MinAge: c.cfg.Filter.MinAge, Final: r.Final,
		Stats: report.Stats{Blocks: r.Objects, Allocs: r.Counters.Allocs, Frees: r.Counters.Frees},
		// A missed event can leave a freed object listed: it counts as
		// the frees lsan did not see.
		Dropped: report.Dropped{Allocs: r.Counters.AllocDrops, Stacks: r.Counters.StackDrops, Frees: r.Counters.Missed},
	}
	for _, s := range r.Suppressed {
		m.Suppressed = append(m.Suppressed, report.SuppressedRule{Pattern: s.Pattern, Count: s.Count, Bytes: s.Bytes})
	}
	for _, g := range groups {
		m.Groups = append(m.Groups, modelGroup(g))
	}
	return m
}

func modelGroup(g Group) report.Group {
	out := report.Group{
		Kind: report.Outstanding, Bytes: g.Bytes, Count: g.Count, Key: g.Key,
		Allocator: g.Event.String(), Stack: make([]symbolize.Frame, 0, len(g.Stack)),
	}
	for _, f := range g.Stack {
		out.PCs = append(out.PCs, f.PC)
		out.Stack = append(out.Stack, f.Frame)
	}
	for _, o := range g.Objects {
		out.Objects = append(out.Objects, report.Object{Addr: o.Addr, Size: o.Size})
	}
	return out
}

// observe hands the model to the run's history and carries back what it
// decided: each group's trend, the groups its filters hid, growing
// groups first.
func (c *checker) observe(r *Report, m *report.Report, groups []Group) []Group {
	h := c.cfg.History
	if h == nil {
		return groups
	}
	h.Observe(m)
	byKey := make(map[uint64]Group, len(groups))
	for _, g := range groups {
		byKey[g.Key] = g
	}
	out := make([]Group, 0, len(m.Groups))
	for _, mg := range m.Groups {
		g := byKey[mg.Key]
		g.Trend = mg.Trend
		out = append(out, g)
	}
	r.Hidden, r.HiddenWhy, r.History = m.Hidden, m.HiddenWhy, m.History
	return out
}
