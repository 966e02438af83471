package report

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/lsan-project/lsan/symbolize"
)

// The JSON shapes of docs/json.md (CONTRACT.md's schema, extended).
type jsonReport struct {
	PID        int              `json:"pid"`
	Time       string           `json:"time"`
	Mode       Mode             `json:"mode"`
	Leaks      []jsonGroup      `json:"leaks"`
	Suppressed []SuppressedRule `json:"suppressed"`
	Stats      Stats            `json:"stats"`
	Dropped    Dropped          `json:"dropped"`
	Complete   bool             `json:"complete"`
	Summary    jsonSummary      `json:"summary"`
	Omitted    int              `json:"omitted,omitempty"`
	SampleRate uint32           `json:"sample_rate,omitempty"`
	MinAgeMS   int64            `json:"min_age_ms,omitempty"`
	Final      bool             `json:"final,omitempty"`
	// Checked is present, false, only on the record of a run in which no
	// check ran.
	Checked *bool `json:"checked,omitempty"`
	// Timeline is present once two checks of the process exist.
	Timeline *jsonTimeline `json:"timeline,omitempty"`
	// Hidden counts groups left out by --only-growing or --baseline.
	Hidden    int    `json:"hidden,omitempty"`
	HiddenWhy string `json:"hidden_why,omitempty"`
}

type jsonTimeline struct {
	Checks  int    `json:"checks"`
	Since   string `json:"since"`
	Window  int    `json:"window"`
	Growing int    `json:"growing"`
	Gone    int    `json:"gone"`
}

// jsonTrend carries the last Window+1 values of the series, not all of
// them: a line per check must not grow with the run.
type jsonTrend struct {
	Verdict      Verdict  `json:"verdict"`
	BytesPerSec  float64  `json:"bytes_per_s"`
	Checks       int      `json:"checks"`
	RecentBytes  []uint64 `json:"recent_bytes"`
	RecentCounts []int    `json:"recent_counts"`
}

type jsonSummary struct {
	Bytes uint64 `json:"bytes"`
	Count int    `json:"count"`
}

type jsonGroup struct {
	Kind    Kind        `json:"kind"`
	Bytes   uint64      `json:"bytes"`
	Count   int         `json:"count"`
	Stack   []jsonFrame `json:"stack"`
	Objects []Object    `json:"objects,omitempty"`
	// SuggestedSuppression is set with --print-suppressions.
	SuggestedSuppression string     `json:"suggested_suppression,omitempty"`
	Trend                *jsonTrend `json:"trend,omitempty"`
	BaselineBytes        *uint64    `json:"baseline_bytes,omitempty"`
}

type jsonFrame struct {
	PC           string `json:"pc"`
	Function     string `json:"function"`
	Module       string `json:"module,omitempty"`
	ModuleOffset string `json:"module_offset,omitempty"`
	BuildID      string `json:"build_id,omitempty"`
	File         string `json:"file,omitempty"`
	Line         int    `json:"line,omitempty"`
	Column       int    `json:"column,omitempty"`
	Inlined      bool   `json:"inlined,omitempty"`
}

// WriteJSON writes r as one JSON object on one line (JSON Lines).
func WriteJSON(w io.Writer, r *Report) error {
	out := jsonReport{
		PID:        r.PID,
		Time:       r.Time.UTC().Format(time.RFC3339Nano),
		Mode:       r.Mode,
		Leaks:      []jsonGroup{},
		Suppressed: r.Suppressed,
		Stats:      r.Stats,
		Dropped:    r.Dropped,
		Complete:   r.Dropped.Complete(),
		Summary:    jsonSummary{Bytes: r.TotalBytes(), Count: r.TotalCount()},
		Omitted:    r.Omitted,
		MinAgeMS:   r.MinAge.Milliseconds(),
		Final:      r.Final,
	}
	if r.SampleRate > 1 {
		out.SampleRate = r.SampleRate
	}
	if r.NoCheck {
		checked := false
		out.Checked = &checked
	}
	if out.Suppressed == nil {
		out.Suppressed = []SuppressedRule{}
	}
	for _, g := range r.Groups {
		out.Leaks = append(out.Leaks, jsonGroup{Kind: g.Kind, Bytes: g.Bytes, Count: g.Count, Stack: jsonFrames(g.Stack), Objects: g.Objects,
			SuggestedSuppression: g.Suggestion, Trend: trendJSON(r, g.Trend), BaselineBytes: g.BaselineBytes})
	}
	if r.timeline() {
		h := r.History
		out.Timeline = &jsonTimeline{Checks: len(h.Times), Since: h.Times[0].UTC().Format(time.RFC3339Nano), Window: h.Window, Gone: len(r.Gone)}
		for _, g := range r.Groups {
			if g.Growing() {
				out.Timeline.Growing++
			}
		}
	}
	out.Hidden, out.HiddenWhy = r.Hidden, r.HiddenWhy
	data, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

func jsonFrames(frames []symbolize.Frame) []jsonFrame {
	out := make([]jsonFrame, 0, len(frames))
	for _, f := range frames {
		jf := jsonFrame{
			PC:       fmt.Sprintf("0x%x", f.PC),
			Function: f.Function,
			Module:   f.Module,
			File:     f.File,
			Line:     f.Line,
			Column:   f.Column,
			Inlined:  f.Inlined,
		}
		if f.Module != "" {
			jf.ModuleOffset = fmt.Sprintf("0x%x", f.ModuleOffset)
			if f.Function == "" {
				jf.BuildID = f.BuildID // what to look up, as in the text report
			}
		}
		out = append(out, jf)
	}
	return out
}

func trendJSON(r *Report, t *Trend) *jsonTrend {
	if !r.timeline() || t == nil {
		return nil
	}
	from := max(len(t.Bytes)-r.History.Window-1, 0)
	return &jsonTrend{Verdict: t.Verdict, BytesPerSec: t.BytesPerSec, Checks: len(t.Bytes),
		RecentBytes: t.Bytes[from:], RecentCounts: t.Counts[from:]}
}
