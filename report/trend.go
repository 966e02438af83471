package report

import (
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
