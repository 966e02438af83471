package timeline

import (
	"time"

	"github.com/lsan-project/lsan/report"
)

// Options set what counts as growing.
type Options struct {
	// Window is K: a growing group rose in each of the last K checks
	// (default 3).
	Window int
	// MinBytes is the least a growing group rose by over those K checks
	// (default 1: any rise).
	MinBytes uint64
}

// DefaultWindow is K when Options.Window is 0.
const DefaultWindow = 3

func (o Options) withDefaults() Options {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.MinBytes == 0 {
		o.MinBytes = 1
	}
	return o
}

// Timeline holds the series of every process it was given reports of.
type Timeline struct {
	opts  Options
	procs map[int]*process
}

// process is one target's checks.
type process struct {
	history report.History
	series  map[key]*series
	order   []key // first-seen order, for stable output
}

type key struct {
	kind  report.Kind
	stack uint64
}

// series is one group's sizes from the check it first appeared in.
type series struct {
	first  int
	bytes  []uint64
	counts []int
	// last is the group as last seen (stack, allocator), for gone groups.
	last report.Group
}

// New returns an empty timeline.
func New(opts Options) *Timeline {
	return &Timeline{opts: opts.withDefaults(), procs: map[int]*process{}}
}

// Window is K, the number of rises that make a group growing.
func (t *Timeline) Window() int { return t.opts.Window }

// Add appends r as its process's next check and annotates it: r.History,
// a Trend on every group, and r.Gone for groups no longer present. Reports
// must come in time order per process. A report that ran no check is
// left alone.
func (t *Timeline) Add(r *report.Report) {
	if r.NoCheck {
		return
	}
	p := t.procs[r.PID]
	if p == nil {
		p = &process{series: map[key]*series{}, history: report.History{Window: t.opts.Window}}
		t.procs[r.PID] = p
	}
	p.add(r, t.opts)
}

func (p *process) add(r *report.Report, opts Options) {
	idx := len(p.history.Times)
	p.history.Times = append(p.history.Times, r.Time)
	p.history.Bytes = append(p.history.Bytes, r.TotalBytes())
	p.history.Counts = append(p.history.Counts, r.TotalCount())
	seen := make(map[key]bool, len(r.Groups))
	for i := range r.Groups {
		g := &r.Groups[i]
		k := key{g.Kind, g.Key}
		s := p.series[k]
		if s == nil {
			s = &series{first: idx}
			p.series[k] = s
			p.order = append(p.order, k)
		}
		s.pad(idx)
		s.bytes = append(s.bytes, g.Bytes)
		s.counts = append(s.counts, g.Count)
		s.last = *g
		s.last.Objects, s.last.Trend = nil, nil
		seen[k] = true
	}
	r.Gone = nil
	for _, k := range p.order {
		if s := p.series[k]; !seen[k] {
			s.pad(idx + 1)
		}
	}
	hist := p.history // a copy: later checks append to p.history
	r.History = &hist
	for i := range r.Groups {
		g := &r.Groups[i]
		g.Trend = p.series[key{g.Kind, g.Key}].trend(hist.Times, opts, true)
	}
	for _, k := range p.order {
		s := p.series[k]
		if seen[k] || s.bytes[len(s.bytes)-1] != 0 || s.goneBefore() {
			continue
		}
		g := s.last
		g.Bytes, g.Count = 0, 0
		g.Trend = s.trend(hist.Times, opts, false)
		r.Gone = append(r.Gone, g)
	}
}

// pad fills the checks in which the group was absent with zeros, up to
// (not including) check n.
func (s *series) pad(n int) {
	for s.first+len(s.bytes) < n {
		s.bytes = append(s.bytes, 0)
		s.counts = append(s.counts, 0)
	}
}

// goneBefore tells a group that was already absent in the check before
// the last one: reported gone once, then left out.
func (s *series) goneBefore() bool {
	n := len(s.bytes)
	return n >= 2 && s.bytes[n-2] == 0
}

func (s *series) trend(times []time.Time, opts Options, present bool) *report.Trend {
	v, rate := Judge(s.bytes, times[s.first:], present, opts)
	return &report.Trend{Verdict: v, BytesPerSec: rate, First: s.first, Bytes: s.bytes, Counts: s.counts}
}

// Judge gives the verdict and rate of one series: bytes[i] at times[i],
// the last entry being the current check; present says whether the group
// is in that check. It is the one definition of the verdicts.
func Judge(bytes []uint64, times []time.Time, present bool, opts Options) (report.Verdict, float64) {
	opts = opts.withDefaults()
	n := len(bytes)
	if n == 0 {
		return report.Plateau, 0
	}
	k := min(opts.Window, n-1)
	rate := 0.0
	if k > 0 {
		if dt := times[n-1].Sub(times[n-1-k]).Seconds(); dt > 0 {
			rate = (float64(bytes[n-1]) - float64(bytes[n-1-k])) / dt
		}
	}
	switch {
	case !present:
		return report.Gone, rate
	case k == opts.Window && roseEachTime(bytes[n-1-k:]) && bytes[n-1]-bytes[n-1-k] >= opts.MinBytes:
		return report.Growing, rate
	case k > 0 && bytes[n-1] < bytes[n-1-k]:
		return report.Shrinking, rate
	}
	return report.Plateau, rate
}

func roseEachTime(b []uint64) bool {
	for i := 1; i < len(b); i++ {
		if b[i] <= b[i-1] {
			return false
		}
	}
	return true
}
