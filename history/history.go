// Package history is what lsan keeps and does across the checks of a run,
// whatever produced them (a process's leak checks, lsan kernel's checks
// of live kernel objects): the series of every group and its growth
// verdict (package timeline), the recording (--record, package record)
// and the filters that need the series or an earlier report
// (--only-growing, --baseline).
//
//	h := &history.History{Record: w, Growth: timeline.Options{Window: 3}}
//	for each check: h.Observe(r) // r now carries trends, growing groups first
//
// One History serves every process of a run: the series are kept by pid.
// A failure to record is a warning (History.Warn); the check goes on.
package history

import (
	"github.com/lsan-project/lsan/baseline"
	"github.com/lsan-project/lsan/record"
	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/timeline"
)

// History is the state kept across checks.
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

// NeedsFrames says whether Observe needs the report's stacks symbolized
// beforehand (recorded frames, baseline matching by frames).
func (h *History) NeedsFrames() bool { return h.RecordSymbols || h.Baseline != nil }

// Observe runs on every check's report, with all its groups, before any
// top-N limit: it records the snapshot (with r.Modules), adds it to the
// series (trends on every group), applies the filters and lists growing
// groups first.
func (h *History) Observe(r *report.Report) {
	if r.NoCheck {
		return
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
}
