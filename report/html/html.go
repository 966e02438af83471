package html

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/symbolize"
)

//go:embed page.html
var page string

// The page's data (page.html reads it).
type pageData struct {
	Generated string    `json:"generated"`
	Processes []process `json:"processes"`
}

type process struct {
	PID    int      `json:"pid"`
	Mode   string   `json:"mode"`
	Time   string   `json:"time"`
	Window int      `json:"window"`
	Times  []int64  `json:"times"` // unix ms of each check
	Bytes  []uint64 `json:"bytes"`
	Counts []int    `json:"counts"`
	Groups []group  `json:"groups"`
	Hidden int      `json:"hidden,omitempty"`
	Why    string   `json:"hidden_why,omitempty"`
	Notes  []string `json:"notes,omitempty"`
}

type group struct {
	Kind     string   `json:"kind"`
	Bytes    uint64   `json:"bytes"`
	Count    int      `json:"count"`
	Verdict  string   `json:"verdict,omitempty"`
	Rate     float64  `json:"rate"`
	First    int      `json:"first"`
	Series   []uint64 `json:"series,omitempty"`
	Frames   []frame  `json:"frames"`
	Baseline *uint64  `json:"baseline,omitempty"`
}

type frame struct {
	PC       string `json:"pc"`
	Function string `json:"fn,omitempty"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Column   int    `json:"col,omitempty"`
	Module   string `json:"mod,omitempty"`
	Offset   string `json:"off,omitempty"`
	Inlined  bool   `json:"inl,omitempty"`
}

// maxSeries is the most points a group's series carries into the page:
// longer series are reduced to the maximum of each bucket.
const maxSeries = 240

// Write writes one page with a section per report (one per process).
func Write(w io.Writer, reports []*report.Report) error {
	d := pageData{Generated: time.Now().UTC().Format(time.RFC3339)}
	for _, r := range reports {
		if r.NoCheck {
			continue
		}
		d.Processes = append(d.Processes, processOf(r))
	}
	js, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode HTML report data: %w", err)
	}
	// encoding/json escapes <, > and & (HTMLEscape), so nothing in the
	// data can end the script element.
	out := strings.Replace(page, "/*DATA*/", string(js), 1)
	if _, err := io.WriteString(w, out); err != nil {
		return fmt.Errorf("write HTML report: %w", err)
	}
	return nil
}

func processOf(r *report.Report) process {
	p := process{PID: r.PID, Mode: string(r.Mode), Time: r.Time.UTC().Format(time.RFC3339), Hidden: r.Hidden, Why: r.HiddenWhy}
	if h := r.History; h != nil {
		p.Window = h.Window
		for _, t := range h.Times {
			p.Times = append(p.Times, t.UnixMilli())
		}
		p.Bytes, p.Counts = h.Bytes, h.Counts
	} else {
		p.Times, p.Bytes, p.Counts = []int64{r.Time.UnixMilli()}, []uint64{r.TotalBytes()}, []int{r.TotalCount()}
	}
	if r.Omitted > 0 {
		p.Notes = append(p.Notes, fmt.Sprintf("%d smaller group(s) left out (--top)", r.Omitted))
	}
	if !r.Dropped.Complete() {
		p.Notes = append(p.Notes, "incomplete data: see the text report's warning")
	}
	for _, g := range r.Groups {
		p.Groups = append(p.Groups, groupOf(g))
	}
	for _, g := range r.Gone {
		p.Groups = append(p.Groups, groupOf(g))
	}
	return p
}

func groupOf(g report.Group) group {
	out := group{Kind: string(g.Kind), Bytes: g.Bytes, Count: g.Count, Frames: frames(g.Stack), Baseline: g.BaselineBytes}
	if t := g.Trend; t != nil {
		out.Verdict, out.Rate, out.First = string(t.Verdict), t.BytesPerSec, t.First
		out.Series = reduce(t.Bytes, maxSeries)
	}
	return out
}

// reduce keeps at most n points: the maximum of each bucket, so that a
// spike or the last rise still shows.
func reduce(s []uint64, n int) []uint64 {
	if len(s) <= n {
		return s
	}
	out := make([]uint64, n)
	for i := range out {
		lo, hi := i*len(s)/n, (i+1)*len(s)/n
		for _, v := range s[lo:hi] {
			out[i] = max(out[i], v)
		}
	}
	return out
}

func frames(stack []symbolize.Frame) []frame {
	out := make([]frame, 0, len(stack))
	for _, f := range stack {
		fr := frame{PC: fmt.Sprintf("0x%x", f.PC), Function: f.Function, File: f.File, Line: f.Line, Column: f.Column, Module: f.Module, Inlined: f.Inlined}
		if f.Module != "" {
			fr.Offset = fmt.Sprintf("0x%x", f.ModuleOffset)
		}
		out = append(out, fr)
	}
	return out
}
