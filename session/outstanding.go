package session

import (
	"fmt"
	"time"

	"github.com/ianlancetaylor/demangle"

	"github.com/lsan-project/lsan/bpf"

	"github.com/lsan-project/lsan/report"
)

// checkOutstanding reports every live tracked block older than MinAge,
// grouped by allocation stack, as bcc's memleak does.
func (s *Session) checkOutstanding(final bool) error {
	start := time.Now()
	blocks, err := s.allocs.Blocks(s.cfg.PID)
	if err != nil {
		return fmt.Errorf("outstanding check: %w", err)
	}
	now := monotonicNow()
	minAge := uint64(s.cfg.MinAge.Nanoseconds())
	g := report.NewGrouper(s.cfg.ReportObjects)
	for _, b := range blocks {
		if minAge > 0 && (b.TimestampNS > now || now-b.TimestampNS < minAge) {
			continue
		}
		g.Add(report.Entry{Kind: report.Outstanding, Key: stackKey(b), Addr: b.Addr, Size: b.Size})
	}
	r := s.newReport(final)
	r.Stats.Blocks = len(blocks)
	r.Groups = g.Groups()
	s.attachPCs(r, blocks)
	r.Stats.CheckMS = float64(time.Since(start).Microseconds()) / 1000
	err = s.symbolizeAndWrite(r)
	s.pruneStacks()
	return err
}

// attachPCs gives each group the PCs of its stack: every group, since the
// recording and the series follow the groups a top-N limit leaves out.
func (s *Session) attachPCs(r *report.Report, blocks []bpf.Block) {
	// A direct and an indirect group can share one stack.
	want := map[uint64][]*report.Group{}
	for i := range r.Groups {
		want[r.Groups[i].Key] = append(want[r.Groups[i].Key], &r.Groups[i])
	}
	for _, b := range blocks {
		groups := want[stackKey(b)]
		if len(groups) == 0 {
			continue
		}
		pcs := s.blockPCs(b)
		for _, g := range groups {
			g.PCs = pcs
			g.Allocator = s.allocatorName(b)
		}
		delete(want, stackKey(b))
	}
}

// allocatorName is the allocator function a block came from, demangled
// unless --no-demangle.
func (s *Session) allocatorName(b bpf.Block) string {
	name := s.tracer.FuncName(b.Fn)
	if name == "" || s.allocs.FuncAddr(b) == 0 {
		return ""
	}
	if s.cfg.Symbolize.NoDemangle {
		return name
	}
	return demangle.Filter(name)
}
