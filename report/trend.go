package report

import (
	"bufio"
	"fmt"
	"sort"
	"time"
)

// Verdict is what a group's series says about it.
type Verdict string

const (
	Growing   Verdict = "growing"   // rose in each of the last K checks, by at least the minimum
	Plateau   Verdict = "plateau"   // neither growing nor shrinking (or too few checks to say)
	Shrinking Verdict = "shrinking" // smaller than K checks ago
	Gone      Verdict = "gone"      // absent from the last check after being seen
)

// Trend is one group's sizes over the checks of a timeline.
type Trend struct {
	Verdict Verdict
	// BytesPerSec is the rate over the verdict's window (the last K
	// checks, fewer when there are fewer).
	BytesPerSec float64
	// First is the index in History.Times of Bytes[0] and Counts[0]: the
	// check where the group first appeared. Later absences count as 0.
	First  int
	Bytes  []uint64
	Counts []int
}

// History is the series of checks of one process that a report ends.
type History struct {
	Times []time.Time
	// Bytes and Counts are the reported totals of each check.
	Bytes  []uint64
	Counts []int
	// Window is K, the number of rises that make a group growing.
	Window int
}

// Growing tells whether a group's trend says growing.
func (g *Group) Growing() bool { return g.Trend != nil && g.Trend.Verdict == Growing }

// GrowingFirst moves growing groups before the others, keeping the order
// of each part, so that a top-N limit keeps them.
func (r *Report) GrowingFirst() {
	sort.SliceStable(r.Groups, func(i, j int) bool { return r.Groups[i].Growing() && !r.Groups[j].Growing() })
}

// OnlyGrowing drops every group that is not growing.
func (r *Report) OnlyGrowing() {
	kept := r.Groups[:0]
	for _, g := range r.Groups {
		if g.Growing() {
			kept = append(kept, g)
		}
	}
	r.hide(len(r.Groups)-len(kept), "not growing (--only-growing)")
	r.Groups = kept
}

func (r *Report) hide(n int, why string) {
	if n == 0 {
		return
	}
	r.Hidden += n
	if r.HiddenWhy != "" {
		why = r.HiddenWhy + "; " + why
	}
	r.HiddenWhy = why
}

// Filter keeps the groups keep accepts; the rest count as hidden, why.
func (r *Report) Filter(keep func(*Group) bool, why string) {
	kept := r.Groups[:0]
	for i := range r.Groups {
		if keep(&r.Groups[i]) {
			kept = append(kept, r.Groups[i])
		}
	}
	r.hide(len(r.Groups)-len(kept), why)
	r.Groups = kept
}

// timeline reports whether r ends a series of at least two checks: only
// then do trends mean something (a single check at exit shows none, as
// LSan's report).
func (r *Report) timeline() bool { return r.History != nil && len(r.History.Times) >= 2 }

// writeTrend prints a group's trend under its frames, indented like them
// (LSan report parsers read the '#N' lines and stop there):
//
//	trend: growing, 192 -> 320 byte(s) over the last 3 check(s), +6.4 byte(s)/s
func writeTrend(w *bufio.Writer, r *Report, g Group) {
	line := TrendText(r.History, g.Trend)
	if line == "" {
		return
	}
	fmt.Fprintf(w, "    trend: %s", line)
	if g.BaselineBytes != nil {
		fmt.Fprintf(w, "; %d byte(s) in the baseline", *g.BaselineBytes)
	}
	w.WriteString("\n")
}

// TrendText says what a group's series shows: "growing, 192 -> 320
// byte(s) over the last 3 check(s), +6.4 byte(s)/s"; "" before a
// timeline exists (fewer than two checks).
func TrendText(h *History, t *Trend) string {
	if h == nil || len(h.Times) < 2 || t == nil {
		return ""
	}
	n := len(t.Bytes)
	k := min(h.Window, n-1)
	if k <= 0 {
		return fmt.Sprintf("%s, new in this check", t.Verdict)
	}
	return fmt.Sprintf("%s, %d -> %d byte(s) over the last %d check(s), %+.1f byte(s)/s", t.Verdict, t.Bytes[n-1-k], t.Bytes[n-1], k, t.BytesPerSec)
}

// timelineSummary is the report's line about its series.
func timelineSummary(r *Report) string {
	if !r.timeline() {
		return ""
	}
	growing := 0
	for _, g := range r.Groups {
		if g.Growing() {
			growing++
		}
	}
	h := r.History
	return fmt.Sprintf("timeline: %d check(s) since %s, %d growing group(s) (rose in each of the last %d checks), %d gone",
		len(h.Times), h.Times[0].Format("2006-01-02 15:04:05"), growing, h.Window, len(r.Gone))
}
