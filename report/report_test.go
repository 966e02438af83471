package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lsan-project/lsan/symbolize"
)

func TestBuildGroupsOrderAndTotals(t *testing.T) {
	entries := []Entry{
		{Kind: Indirect, Key: 7, Addr: 0x3000, Size: 500},
		{Kind: Direct, Key: 1, Addr: 0x1000, Size: 10},
		{Kind: Direct, Key: 2, Addr: 0x2000, Size: 40},
		{Kind: Direct, Key: 1, Addr: 0x1100, Size: 30},
		{Kind: Direct, Key: 3, Addr: 0x4000, Size: 40}, // ties with key 2 on bytes and count
	}
	groups := BuildGroups(entries, true)
	var got []string
	for _, g := range groups {
		got = append(got, string(g.Kind)+":"+itoa(g.Key)+":"+itoa(g.Bytes)+"/"+itoa(uint64(g.Count)))
	}
	want := "direct:1:40/2 direct:2:40/1 direct:3:40/1 indirect:7:500/1"
	if strings.Join(got, " ") != want {
		t.Errorf("groups %v, want %s", got, want)
	}
	if o := groups[0].Objects; len(o) != 2 || o[0].Addr != 0x1000 || o[1].Addr != 0x1100 {
		t.Errorf("objects of the first group: %+v", o)
	}
	r := &Report{Groups: groups}
	if r.TotalBytes() != 620 || r.TotalCount() != 5 {
		t.Errorf("totals %d bytes %d objects, want 620 and 5", r.TotalBytes(), r.TotalCount())
	}
	r.Top(2)
	if len(r.Groups) != 2 || r.Omitted != 2 {
		t.Errorf("Top(2): %d groups, %d omitted", len(r.Groups), r.Omitted)
	}
}

func itoa(n uint64) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
		if n == 0 {
			return string(b)
		}
	}
}

// sampleReport is a leaks report with one direct and one indirect group.
func sampleReport() *Report {
	lookup := func(pc uint64) []symbolize.Frame {
		switch pc {
		case 0x7f0000001000:
			return []symbolize.Frame{{PC: pc, Function: "__libc_malloc", Module: "/lib/libc.so.6", ModuleOffset: 0x1000}}
		case 0x555500001233:
			return []symbolize.Frame{
				{PC: pc, Function: "inlined_helper", Module: "/srv/app", ModuleOffset: 0x1233, File: "/src/app.c", Line: 12, Column: 5, Inlined: true},
				{PC: pc, Function: "quokka_direct", Module: "/srv/app", ModuleOffset: 0x1233, File: "/src/app.c", Line: 34, Column: 87},
			}
		}
		return []symbolize.Frame{{PC: pc, Module: "/srv/app", ModuleOffset: pc & 0xffff}}
	}
	r := &Report{
		PID:  42,
		Time: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC),
		Mode: ModeLeaks,
		Groups: []Group{
			{Kind: Direct, Bytes: 672, Count: 12, Allocator: "malloc", PCs: []uint64{0x7f0000001000, 0x555500001233, 0x555500005677}},
			{Kind: Indirect, Bytes: 48, Count: 1, Allocator: "malloc", PCs: []uint64{0x7f0000001000, 0x555500001233}},
		},
		Suppressed: []SuppressedRule{{Pattern: "leak:libfoo.so", Count: 3, Bytes: 96}},
		Stats:      Stats{Blocks: 20417, ScannedBytes: 183500800, PausedMS: 41.7, CheckMS: 63},
	}
	r.Symbolize(lookup)
	return r
}

func TestWriteTextIsLSanLayout(t *testing.T) {
	var b bytes.Buffer
	if err := WriteText(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	want := `
=================================================================
==42==ERROR: LeakSanitizer: detected memory leaks

Direct leak of 672 byte(s) in 12 object(s) allocated from:
    #0 0x7f0000001000 in malloc (/lib/libc.so.6+0x1000)
    #1 0x555500001233 in inlined_helper /src/app.c:12:5
    #2 0x555500001233 in quokka_direct /src/app.c:34:87
    #3 0x555500005677 (/srv/app+0x5677)

Indirect leak of 48 byte(s) in 1 object(s) allocated from:
    #0 0x7f0000001000 in malloc (/lib/libc.so.6+0x1000)
    #1 0x555500001233 in inlined_helper /src/app.c:12:5
    #2 0x555500001233 in quokka_direct /src/app.c:34:87

-----------------------------------------------------
Suppressions used:
  count      bytes template
      3         96 libfoo.so
-----------------------------------------------------

lsan: 20417 block(s) tracked, dropped 0 allocation(s) and 0 stack(s) since attach; scanned 183500800 bytes, target paused 41.7 ms, check 63.0 ms

SUMMARY: LeakSanitizer: 720 byte(s) leaked in 13 allocation(s).
`
	if b.String() != want {
		t.Errorf("text report:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWriteJSONContract(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	if bytes.Count(b.Bytes(), []byte("\n")) != 1 {
		t.Errorf("not one line: %q", b.String())
	}
	var got struct {
		PID   int    `json:"pid"`
		Time  string `json:"time"`
		Mode  string `json:"mode"`
		Leaks []struct {
			Kind  string `json:"kind"`
			Bytes uint64 `json:"bytes"`
			Count int    `json:"count"`
			Stack []map[string]any
		} `json:"leaks"`
		Suppressed []SuppressedRule `json:"suppressed"`
		Stats      map[string]any   `json:"stats"`
		Dropped    map[string]any   `json:"dropped"`
	}
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.PID != 42 || got.Time != "2026-11-21T10:00:00Z" || got.Mode != "leaks" || len(got.Leaks) != 2 {
		t.Fatalf("header: %+v", got)
	}
	d := got.Leaks[0]
	if d.Kind != "direct" || d.Bytes != 672 || d.Count != 12 || len(d.Stack) != 4 {
		t.Errorf("first group: %+v", d)
	}
	f := d.Stack[2]
	if f["pc"] != "0x555500001233" || f["function"] != "quokka_direct" || f["file"] != "/src/app.c" || f["line"] != 34.0 || f["column"] != 87.0 || f["module"] != "/srv/app" {
		t.Errorf("frame 2: %v", f)
	}
	if d.Stack[1]["inlined"] != true {
		t.Errorf("frame 1 is not marked inlined: %v", d.Stack[1])
	}
	if _, ok := d.Stack[3]["file"]; ok {
		t.Errorf("unknown file not omitted: %v", d.Stack[3])
	}
	if len(got.Suppressed) != 1 || got.Suppressed[0] != (SuppressedRule{"leak:libfoo.so", 3, 96}) {
		t.Errorf("suppressed: %+v", got.Suppressed)
	}
	if got.Stats["blocks"] != 20417.0 || got.Stats["paused_ms"] != 41.7 || got.Dropped["allocs"] != 0.0 {
		t.Errorf("stats %v dropped %v", got.Stats, got.Dropped)
	}
}

func TestWriteTextNoLeaks(t *testing.T) {
	var b bytes.Buffer
	WriteText(&b, &Report{PID: 7, Mode: ModeLeaks, Stats: Stats{Blocks: 3}})
	want := "==7==lsan: no leaks found (3 block(s) tracked, dropped 0 allocation(s) and 0 stack(s) since attach)\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

// TestJSONNoCheck: the record of a run without a check says so; ordinary
// records carry no "checked" field.
func TestJSONNoCheck(t *testing.T) {
	var buf strings.Builder
	if err := WriteJSON(&buf, &Report{PID: 7, Mode: ModeLeaks, Final: true, NoCheck: true}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"final":true,"checked":false}`) {
		t.Errorf("no-check record: %s", buf.String())
	}
	buf.Reset()
	WriteJSON(&buf, &Report{PID: 7, Mode: ModeLeaks})
	if strings.Contains(buf.String(), "checked") {
		t.Errorf("ordinary record has checked: %s", buf.String())
	}
	buf.Reset()
	WriteText(&buf, &Report{PID: 7, Mode: ModeLeaks, NoCheck: true})
	if buf.Len() != 0 {
		t.Errorf("text report of no check: %q", buf.String())
	}
}

// TestUnsymbolizedFrameBuildID: a frame without symbols shows its module's
// build-id, as LSan prints it.
func TestUnsymbolizedFrameBuildID(t *testing.T) {
	r := &Report{PID: 7, Mode: ModeLeaks, Groups: []Group{{Kind: Direct, Bytes: 8, Count: 1, Stack: []symbolize.Frame{
		{PC: 0x7f0000001234, Module: "/usr/lib/libfoo.so.1", ModuleOffset: 0x1234, BuildID: "ab12cd"},
	}}}}
	var text, js strings.Builder
	WriteText(&text, r)
	if want := "#0 0x7f0000001234 (/usr/lib/libfoo.so.1+0x1234) (BuildId: ab12cd)\n"; !strings.Contains(text.String(), want) {
		t.Errorf("text report lacks %q:\n%s", want, text.String())
	}
	WriteJSON(&js, r)
	if want := `"module_offset":"0x1234","build_id":"ab12cd"`; !strings.Contains(js.String(), want) {
		t.Errorf("JSON lacks %s: %s", want, js.String())
	}
}
