package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/lsan-project/lsan/symbolize"
)

func trendReport() *Report {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	var times []time.Time
	for i := 0; i < 5; i++ {
		times = append(times, t0.Add(time.Duration(i)*10*time.Second))
	}
	stack := []symbolize.Frame{{PC: 0x10, Function: "malloc"}, {PC: 0x20, Function: "leak_steadily", File: "/src/g.c", Line: 62}}
	return &Report{
		PID: 9, Time: times[4], Mode: ModeLeaks,
		Groups: []Group{
			{Kind: Direct, Bytes: 1008, Count: 1, Stack: stack, Trend: &Trend{Verdict: Plateau, First: 0, Bytes: []uint64{1008, 1008, 1008, 1008, 1008}, Counts: []int{1, 1, 1, 1, 1}}},
			{Kind: Direct, Bytes: 400, Count: 5, Stack: stack, Trend: &Trend{Verdict: Growing, BytesPerSec: 10.667, First: 0, Bytes: []uint64{80, 160, 240, 320, 400}, Counts: []int{1, 2, 3, 4, 5}}},
		},
		History: &History{Times: times, Bytes: []uint64{1088, 1168, 1248, 1328, 1408}, Counts: []int{2, 3, 4, 5, 6}, Window: 3},
	}
}

func TestTrendText(t *testing.T) {
	r := trendReport()
	r.GrowingFirst()
	var b bytes.Buffer
	WriteText(&b, r)
	out := b.String()
	want := "Direct leak of 400 byte(s) in 5 object(s) allocated from:\n" +
		"    #0 0x10 in malloc (<unknown module>)\n" +
		"    #1 0x20 in leak_steadily /src/g.c:62\n" +
		"    trend: growing, 160 -> 400 byte(s) over the last 3 check(s), +10.7 byte(s)/s\n\n" +
		"Direct leak of 1008 byte(s)"
	if !strings.Contains(out, want) {
		t.Errorf("text report:\n%s\nwant it to contain:\n%s", out, want)
	}
	if !strings.Contains(out, "lsan: timeline: 5 check(s) since 2026-12-03 10:00:00, 1 growing group(s) (rose in each of the last 3 checks), 0 gone\n") {
		t.Errorf("no timeline line:\n%s", out)
	}
}

// One check (lsan run's check at exit): no trend lines, LSan's layout.
func TestNoTrendOnOneCheck(t *testing.T) {
	r := trendReport()
	r.History = &History{Times: r.History.Times[:1], Window: 3}
	var b bytes.Buffer
	WriteText(&b, r)
	if strings.Contains(b.String(), "trend") || strings.Contains(b.String(), "timeline") {
		t.Errorf("single check shows a trend:\n%s", b.String())
	}
	b.Reset()
	WriteJSON(&b, r)
	if strings.Contains(b.String(), `"trend"`) || strings.Contains(b.String(), `"timeline"`) {
		t.Errorf("single check JSON has a trend: %s", b.String())
	}
}

func TestTrendJSON(t *testing.T) {
	r := trendReport()
	r.GrowingFirst()
	var b bytes.Buffer
	WriteJSON(&b, r)
	out := b.String()
	for _, want := range []string{
		`"trend":{"verdict":"growing","bytes_per_s":10.667,"checks":5,"recent_bytes":[160,240,320,400],"recent_counts":[2,3,4,5]}`,
		`"timeline":{"checks":5,"since":"2026-12-03T10:00:00Z","window":3,"growing":1,"gone":0}`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("JSON lacks %s:\n%s", want, out)
		}
	}
	if strings.Index(out, `"growing"`) > strings.Index(out, `"plateau"`) {
		t.Errorf("growing group not first")
	}
}
