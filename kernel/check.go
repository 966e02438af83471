package kernel

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lsan-project/lsan/history"
	"github.com/lsan-project/lsan/ktrace"
	"github.com/lsan-project/lsan/suppressions"
	"github.com/lsan-project/lsan/symbolize"
)

// Config is one `lsan kernel` run.
type Config struct {
	Tracer ktrace.Options
	Filter Filter
	// Interval between checks; Count checks (0: until ctx ends, then one
	// final check).
	Interval time.Duration
	Count    int
	// Top shows the N largest groups (0: all).
	Top           int
	ReportObjects bool
	Suppressions  *suppressions.Set
	Write         func(*Report) error
	Log           func(format string, args ...any)
	// History, when set, keeps the series of every group across checks
	// (growth verdicts), records the checks (--record) and applies
	// --only-growing.
	History *history.History
}

// Run traces until Count checks are done or ctx ends (one last check
// then), writing a report per check. The tracer is detached on return.
func Run(ctx context.Context, cfg Config) error {
	t, err := ktrace.Open(cfg.Tracer)
	if err != nil {
		return err
	}
	defer t.Close()
	// Read after the programs are loaded: their own symbols (bpf_prog_*)
	// head every stack, and are cut off by name.
	ks, err := symbolize.LoadKallsyms()
	if err != nil {
		return err
	}
	announce(cfg, t.Events)
	c := &checker{cfg: cfg, tracer: t, ks: ks, prev: map[uint64]Group{}}
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for n := 1; ; n++ {
		final := false
		select {
		case <-ctx.Done():
			final = true
		case <-tick.C:
			final = cfg.Count > 0 && n >= cfg.Count
		}
		if err := c.check(final); err != nil {
			return err
		}
		if final {
			return nil
		}
	}
}

// announce says on standard error what is traced and what this kernel
// lacks, once.
func announce(cfg Config, events []ktrace.EventStatus) {
	if cfg.Log == nil {
		return
	}
	var on, off []string
	for _, e := range events {
		switch {
		case e.Attached:
			on = append(on, e.Name)
		case !e.Legacy:
			off = append(off, e.Name+" ("+e.Why+")")
		}
	}
	cfg.Log("lsan: tracing kernel allocations: %s", strings.Join(on, ", "))
	if len(off) > 0 {
		cfg.Log("lsan: warning: not traced on this kernel: %s", strings.Join(off, "; "))
	}
}

type checker struct {
	cfg    Config
	tracer *ktrace.Tracer
	ks     *symbolize.Kallsyms
	// prev: the previous check's groups by key, for growth.
	prev map[uint64]Group
}

func (c *checker) check(final bool) error {
	snap, err := c.tracer.Snapshot()
	if err != nil {
		return fmt.Errorf("kernel check: %w", err)
	}
	groups, procs, first := buildGroups(snap, c.cfg.Filter, c.cfg.ReportObjects)
	r := &Report{
		Time: time.Now(), Processes: procs, Filter: c.cfg.Filter, Events: c.tracer.Events,
		Counters: snap.Counters, Objects: len(snap.Objects), SampleRate: c.cfg.Tracer.SampleRate, NoStacks: c.cfg.Tracer.NoStacks, Final: final,
	}
	for i := range groups {
		o := first[groups[i].Key]
		groups[i].Stack = symbolizeStack(c.ks, snap.Stacks[o.StackID], o.CallSite)
	}
	groups = c.suppress(r, groups)
	c.growth(groups)
	m := c.model(r, groups)
	groups = c.observe(r, m, groups)
	if c.cfg.Top > 0 && len(groups) > c.cfg.Top {
		r.Omitted = len(groups) - c.cfg.Top
		groups = groups[:c.cfg.Top]
	}
	m.Top(c.cfg.Top)
	r.Groups, r.Model = groups, m
	return c.cfg.Write(r)
}

// suppress removes the groups a rule matches and counts them per rule.
func (c *checker) suppress(r *Report, groups []Group) []Group {
	set := c.cfg.Suppressions
	if set == nil || len(set.Rules) == 0 {
		return groups
	}
	set.ResetCounts()
	kept := groups[:0]
	for _, g := range groups {
		stack := make([]symbolize.Frame, len(g.Stack))
		for i, f := range g.Stack {
			stack[i] = f.Frame
		}
		if rule := set.Match(stack); rule != nil {
			set.Record(rule, g.Count, g.Bytes)
			continue
		}
		kept = append(kept, g)
	}
	for _, rule := range set.Used() {
		r.Suppressed = append(r.Suppressed, Suppressed{Pattern: rule.String(), Count: rule.Hits, Bytes: rule.Bytes})
	}
	return kept
}

// growth compares each group with the previous check: a kernel leak is a
// group that keeps growing.
func (c *checker) growth(groups []Group) {
	next := make(map[uint64]Group, len(groups))
	for i := range groups {
		g := &groups[i]
		if p, ok := c.prev[g.Key]; ok {
			g.GrowthCount = g.Count - p.Count
			g.GrowthBytes = int64(g.Bytes) - int64(p.Bytes)
		} else if len(c.prev) > 0 {
			g.New = true
		}
		next[g.Key] = Group{Count: g.Count, Bytes: g.Bytes}
	}
	c.prev = next
}
