package session

import (
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/lsan-project/lsan/report"
)

// observe hands every check's report to the run's History (trends,
// recording, filters), with the frames and modules it needs.
func (s *Session) observe(r *report.Report) {
	h := s.cfg.History
	if h == nil || r.NoCheck {
		return
	}
	if h.NeedsFrames() {
		r.Symbolize(s.symbolizePC)
	}
	if s.proc != nil {
		r.Modules = s.proc.Modules()
	}
	h.Observe(r)
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
		if v.targetExited() || v.exitChecked {
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
