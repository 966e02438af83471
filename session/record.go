package session

import (
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/lsan-project/lsan/baseline"
	"github.com/lsan-project/lsan/record"
	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/timeline"
)

// History is what a session keeps and does across checks: the series of
// every group (trends in every report), the recording (--record) and the
// filters that need the series or a baseline. One History is shared by
// every process of a session (keyed inside by pid).
type History struct {
	// Record, when set, receives every check as a snapshot.
	Record *record.Writer
	// RecordSymbols stores the symbolized frames with the stacks.
	RecordSymbols bool
	// Growth sets what counts as growing (--growth-window, --growth-min).
	Growth timeline.Options
	// OnlyGrowing reports the growing groups alone.
	OnlyGrowing bool
	// Baseline, when set, reports only what is new or larger than there.
	Baseline *baseline.Baseline
	// Warn receives a failure to record (the check itself goes on).
	Warn func(format string, args ...any)

	series *timeline.Timeline
}

// observe runs on every check's report, with all its groups and their
// PCs, before the top-N limit: it records the snapshot, adds it to the
// series (trends on every group), applies the filters and lists growing
// groups first.
func (s *Session) observe(r *report.Report) {
	h := s.cfg.History
	if h == nil || r.NoCheck {
		return
	}
	if h.RecordSymbols || h.Baseline != nil {
		r.Symbolize(s.symbolizePC)
	}
	if s.proc != nil {
		r.Modules = s.proc.Modules()
	}
	if h.Record != nil {
		if err := h.Record.Write(r, r.Modules, h.RecordSymbols); err != nil && h.Warn != nil {
			h.Warn("lsan: warning: %v", err)
		}
	}
	if h.series == nil {
		h.series = timeline.New(h.Growth)
	}
	h.series.Add(r)
	if h.Baseline != nil {
		h.Baseline.Apply(r)
	}
	if h.OnlyGrowing {
		r.OnlyGrowing()
	}
	r.GrowingFirst()
	if r.Hidden > 0 && r.Mode == report.ModeLeaks {
		// The exit status answers for what is shown: "no new leak".
		s.lastLeak = len(r.Groups) > 0
	}
}

// periodicChecks ticks every Config.Interval in lsan run when one is set
// (lsan run --interval: checks of the live command, for its timeline);
// nil, never ticking, otherwise.
func (s *Session) periodicChecks() (<-chan time.Time, func()) {
	if s.cfg.Interval <= 0 {
		return nil, func() {}
	}
	t := time.NewTicker(s.cfg.Interval)
	return t.C, t.Stop
}

// checkLive checks every live process of the family, not as their final
// check: the verdict at exit still comes from the check at exit.
func (f *family) checkLive() {
	for _, v := range append([]*Session{f.root}, f.sortedChildren()...) {
		if v.targetExited() {
			continue
		}
		if err := v.check(false); err != nil && !errors.Is(err, ErrTargetExited) {
			v.cfg.Log("lsan: %v", err)
		}
	}
}

func (f *family) sortedChildren() []*Session {
	var out []*Session
	for _, pid := range slices.Sorted(maps.Keys(f.children)) {
		out = append(out, f.children[pid])
	}
	return out
}
