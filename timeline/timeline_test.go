package timeline

import (
	"testing"
	"time"

	"github.com/lsan-project/lsan/report"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func check(i int, groups ...report.Group) *report.Report {
	return &report.Report{PID: 7, Time: t0.Add(time.Duration(i) * 10 * time.Second), Mode: report.ModeLeaks, Groups: groups}
}

func grp(key uint64, bytes uint64, count int) report.Group {
	return report.Group{Kind: report.Direct, Key: key, Bytes: bytes, Count: count}
}

// The fixture's three shapes: a steady leak (key 1), a cache that fills
// and stays (key 2), a one-off at startup (key 3); plus one that goes
// away (key 4) and one that shrinks (key 5).
func TestVerdicts(t *testing.T) {
	tl := New(Options{})
	steady := []uint64{64, 128, 192, 256, 320}
	cache := []uint64{32, 96, 128, 128, 128}
	var last *report.Report
	for i := range steady {
		gs := []report.Group{grp(1, steady[i], i+1), grp(2, cache[i], int(cache[i]/32)), grp(3, 500, 1)}
		if i < 3 {
			gs = append(gs, grp(4, 10, 1))
		}
		gs = append(gs, grp(5, uint64(1000-100*i), 10-i))
		last = check(i, gs...)
		tl.Add(last)
	}
	want := map[uint64]report.Verdict{1: report.Growing, 2: report.Plateau, 3: report.Plateau, 5: report.Shrinking}
	for _, g := range last.Groups {
		if g.Trend.Verdict != want[g.Key] {
			t.Errorf("group %d: verdict %s, want %s", g.Key, g.Trend.Verdict, want[g.Key])
		}
	}
	if r := last.Groups[0].Trend.BytesPerSec; r != 6.4 {
		t.Errorf("steady leak rate %v B/s, want 6.4 (192 bytes in 30 s)", r)
	}
	if got := last.Groups[0].Trend.Bytes; len(got) != 5 || got[4] != 320 {
		t.Errorf("steady series %v", got)
	}
	if len(last.Gone) != 0 {
		t.Errorf("gone reported twice: %+v", last.Gone)
	}
	if h := last.History; len(h.Times) != 5 || h.Bytes[4] != 320+128+500+600 || h.Counts[4] != 5+4+1+6 {
		t.Errorf("history %+v", h)
	}
}

func TestGoneOnce(t *testing.T) {
	tl := New(Options{Window: 2})
	tl.Add(check(0, grp(1, 10, 1), grp(2, 5, 1)))
	r := check(1, grp(1, 20, 2))
	tl.Add(r)
	if len(r.Gone) != 1 || r.Gone[0].Key != 2 || r.Gone[0].Trend.Verdict != report.Gone {
		t.Fatalf("gone = %+v", r.Gone)
	}
	if got := r.Gone[0].Trend.Bytes; len(got) != 2 || got[0] != 5 || got[1] != 0 {
		t.Errorf("gone series %v, want [5 0]", got)
	}
	// Back again after an absence: its series has the gap as 0.
	r = check(2, grp(1, 30, 3), grp(2, 7, 1))
	tl.Add(r)
	if got := r.Groups[1].Trend.Bytes; len(got) != 3 || got[1] != 0 || got[2] != 7 {
		t.Errorf("returning series %v, want [5 0 7]", got)
	}
	// Window 2: key 1 rose twice.
	if v := r.Groups[0].Trend.Verdict; v != report.Growing {
		t.Errorf("key 1: %s, want growing", v)
	}
}

func TestJudge(t *testing.T) {
	times := []time.Time{t0, t0.Add(time.Second), t0.Add(2 * time.Second), t0.Add(3 * time.Second)}
	cases := []struct {
		bytes []uint64
		opts  Options
		want  report.Verdict
	}{
		{[]uint64{1, 2, 3, 4}, Options{}, report.Growing},
		{[]uint64{1, 2, 3}, Options{}, report.Plateau},               // too few checks for K=3
		{[]uint64{1, 2, 2, 4}, Options{}, report.Plateau},            // one check without a rise
		{[]uint64{1, 2, 3, 4}, Options{MinBytes: 4}, report.Plateau}, // rose 3 bytes, minimum 4
		{[]uint64{1, 2, 3, 4}, Options{MinBytes: 3}, report.Growing}, // exactly the minimum
		{[]uint64{9, 8, 9, 5}, Options{}, report.Shrinking},          // smaller than K checks ago
		{[]uint64{5, 6, 7, 8}, Options{Window: 1}, report.Growing},   // K=1: the last rise
		{[]uint64{5, 6, 7, 7}, Options{Window: 1}, report.Plateau},
	}
	for _, c := range cases {
		if v, _ := Judge(c.bytes, times[:len(c.bytes)], true, c.opts); v != c.want {
			t.Errorf("Judge(%v, %+v) = %s, want %s", c.bytes, c.opts, v, c.want)
		}
	}
	if v, _ := Judge([]uint64{3, 0}, times[:2], false, Options{}); v != report.Gone {
		t.Errorf("absent group: %s, want gone", v)
	}
}

// Processes are followed apart: the same stack key in two processes is
// two series.
func TestPerProcess(t *testing.T) {
	tl := New(Options{Window: 1})
	a := check(0, grp(1, 10, 1))
	b := check(0, grp(1, 99, 1))
	b.PID = 8
	tl.Add(a)
	tl.Add(b)
	a2 := check(1, grp(1, 20, 2))
	tl.Add(a2)
	if v := a2.Groups[0].Trend; v.Verdict != report.Growing || len(v.Bytes) != 2 || v.Bytes[0] != 10 {
		t.Errorf("pid 7 trend %+v", v)
	}
}
