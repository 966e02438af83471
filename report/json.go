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
	SuggestedSuppression string `json:"suggested_suppression,omitempty"`
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
		out.Leaks = append(out.Leaks, jsonGroup{Kind: g.Kind, Bytes: g.Bytes, Count: g.Count, Stack: jsonFrames(g.Stack), Objects: g.Objects, SuggestedSuppression: g.Suggestion})
	}
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
