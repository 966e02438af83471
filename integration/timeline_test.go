package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lsan-project/lsan/record"
	"github.com/lsan-project/lsan/report"
)

// timelineReport is the part of a JSON report the timeline tests read.
type timelineReport struct {
	PID   int    `json:"pid"`
	Mode  string `json:"mode"`
	Leaks []struct {
		Kind  string `json:"kind"`
		Bytes uint64 `json:"bytes"`
		Count int    `json:"count"`
		Stack []struct {
			Function string `json:"function"`
		} `json:"stack"`
		Trend *struct {
			Verdict     string   `json:"verdict"`
			BytesPerSec float64  `json:"bytes_per_s"`
			Checks      int      `json:"checks"`
			RecentBytes []uint64 `json:"recent_bytes"`
		} `json:"trend"`
	} `json:"leaks"`
	Summary struct {
		Bytes uint64 `json:"bytes"`
		Count int    `json:"count"`
	} `json:"summary"`
	Timeline *struct {
		Checks  int `json:"checks"`
		Growing int `json:"growing"`
		Window  int `json:"window"`
	} `json:"timeline"`
	Hidden int `json:"hidden"`
}

func parseTimeline(t *testing.T, out string) []timelineReport {
	t.Helper()
	var reps []timelineReport
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r timelineReport
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		reps = append(reps, r)
	}
	return reps
}

// verdicts maps "kind site" (site: the allocator's caller) to the
// group's verdict, bytes and count, as "verdict bytes/count".
func verdicts(r timelineReport) map[string]string {
	out := map[string]string{}
	for _, g := range r.Leaks {
		site := "(no stack)"
		if len(g.Stack) > 1 {
			site = g.Stack[1].Function
		}
		v := "-"
		if g.Trend != nil {
			v = g.Trend.Verdict
		}
		out[g.Kind+" "+site] = fmt.Sprintf("%s %d/%d", v, g.Bytes, g.Count)
	}
	return out
}

func growingSites(r timelineReport) []string {
	var out []string
	for _, g := range r.Leaks {
		if g.Trend != nil && g.Trend.Verdict == "growing" {
			out = append(out, g.Stack[1].Function)
		}
	}
	return out
}

func growthExample(t *testing.T) example {
	for _, ex := range loadExamples(t) {
		if ex.Name == "growth" {
			return ex
		}
	}
	t.Fatal("examples/growth missing")
	return example{}
}

// startGrowth starts examples/growth serving forever, one request every
// 20 ms, and returns it before its trigger.
func startGrowth(t *testing.T) *process {
	ex := growthExample(t)
	ex.Run.Env = map[string]string{"LSAN_EXAMPLE_REQUESTS": "0", "LSAN_EXAMPLE_INTERVAL_MS": "20"}
	return startExample(t, ex)
}

// TestTimelineAttach: lsan -p on the growth fixture, 6 checks 400 ms
// apart, recorded. Exactly one group grows (leak_steadily), listed first;
// the startup leak is a plateau of exactly 1008 bytes; the cache is no
// leak. lsan report on the recording gives the same groups and verdicts.
// --only-growing shows the growing group alone, live and offline.
func TestTimelineAttach(t *testing.T) {
	requireRoot(t)
	for _, mode := range []string{"leaks", "outstanding"} {
		t.Run(mode, func(t *testing.T) {
			rec := filepath.Join(t.TempDir(), "growth.rec")
			p := startGrowth(t)
			a := attach(t, p.Pid(), "--mode", mode, "--top", "0", "-i", "400ms", "-n", "6", "--format", "json", "--record", rec)
			io.WriteString(p.Stdin, "go\n")
			if err := a.cmd.Wait(); err != nil && mode == "outstanding" {
				t.Fatalf("lsan: %v\n%s", err, a.stderr.String())
			}
			reps := parseTimeline(t, a.stdout.String())
			if len(reps) != 6 {
				t.Fatalf("%d reports, want 6", len(reps))
			}
			last := reps[5]
			checkGrowth(t, "live", mode, last)
			if last.Timeline == nil || last.Timeline.Checks != 6 || last.Timeline.Growing != 1 || last.Timeline.Window != 3 {
				t.Errorf("live timeline %+v, want 6 checks, 1 growing, window 3", last.Timeline)
			}
			if g := last.Leaks[0]; g.Trend == nil || g.Trend.Verdict != "growing" {
				t.Errorf("first group is not the growing one: %+v", g)
			}

			code, out, errOut := runLSan(t, nil, "report", "--format", "json", rec)
			if code != 0 {
				t.Fatalf("lsan report: status %d\n%s", code, errOut)
			}
			off := parseTimeline(t, out)
			if len(off) != 1 {
				t.Fatalf("lsan report: %d reports, want the last one", len(off))
			}
			checkGrowth(t, "offline", mode, off[0])
			if got, want := verdicts(off[0]), verdicts(last); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("offline groups %v\n live groups %v", got, want)
			}

			code, out, errOut = runLSan(t, nil, "report", "--format", "json", "--only-growing", rec)
			if code != 0 {
				t.Fatalf("lsan report --only-growing: status %d\n%s", code, errOut)
			}
			only := parseTimeline(t, out)[0]
			if len(only.Leaks) != 1 || only.Leaks[0].Stack[1].Function != "leak_steadily" || only.Hidden != len(last.Leaks)-1 {
				t.Errorf("--only-growing: %v, %d hidden", verdicts(only), only.Hidden)
			}
		})
	}
}

// checkGrowth asserts the fixture's shapes in the last report of a run.
func checkGrowth(t *testing.T, what, mode string, r timelineReport) {
	t.Helper()
	if g := growingSites(r); len(g) != 1 || g[0] != "leak_steadily" {
		t.Errorf("%s: growing groups %v, want exactly [leak_steadily]; all: %v", what, g, verdicts(r))
	}
	v := verdicts(r)
	kind := "direct"
	if mode == "outstanding" {
		kind = "outstanding"
		if got := v["outstanding cache_store"]; got != "plateau 384/8" {
			t.Errorf("%s: cache_store %q, want plateau 384/8", what, got)
		}
	} else if _, ok := v["direct cache_store"]; ok {
		t.Errorf("%s: the cache is reachable, reported as a leak", what)
	}
	if got := v[kind+" leak_at_startup"]; got != "plateau 1008/1" {
		t.Errorf("%s: leak_at_startup %q, want plateau 1008/1", what, got)
	}
	steady := v[kind+" leak_steadily"]
	var bytes, count int
	if _, err := fmt.Sscanf(steady, "growing %d/%d", &bytes, &count); err != nil || bytes != 80*count {
		t.Errorf("%s: leak_steadily %q, want growing, 80 bytes per object", what, steady)
	}
}

// TestTimelineRun: lsan run --interval on the growth fixture (40
// requests, 50 ms apart): the checks of the live command and the one at
// exit are recorded; at exit exactly one group grows, with the example's
// exact totals, live and offline, and the exit status is 23.
func TestTimelineRun(t *testing.T) {
	requireRoot(t)
	ex := growthExample(t)
	dir := t.TempDir()
	rec, jsonOut := filepath.Join(dir, "run.rec"), filepath.Join(dir, "run.json")
	cmd := exec.Command(lsan(t), "run", "--interval", "300ms", "--format", "json", "-o", jsonOut, "--record", rec, "--", ex.binary())
	cmd.Env = append(os.Environ(), "LSAN_EXAMPLE_REQUESTS=40", "LSAN_EXAMPLE_INTERVAL_MS=50")
	code, _, errOut := runToEnd(t, cmd)
	if code != 23 {
		t.Fatalf("lsan run: status %d, want 23\n%s", code, errOut)
	}
	data, _ := os.ReadFile(jsonOut)
	reps := parseTimeline(t, string(data))
	if len(reps) < 5 {
		t.Fatalf("%d reports, want at least 5 (checks every 300 ms of a 2 s run, and at exit)", len(reps))
	}
	last := reps[len(reps)-1]
	want := map[string]string{"direct leak_steadily": "growing 3200/40", "direct leak_at_startup": "plateau 1008/1"}
	if got := verdicts(last); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("at exit: %v, want %v", got, want)
	}
	code, out, errOut := runLSan(t, nil, "report", "--format", "json", rec)
	if code != 0 {
		t.Fatalf("lsan report: status %d\n%s", code, errOut)
	}
	if got := verdicts(parseTimeline(t, out)[0]); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("offline: %v, want %v", got, want)
	}
}

// TestReportFormatsAgree: the text report, the JSON report and
// `go tool pprof -top` / `-traces` on the pprof output of one recording
// show the same groups and totals.
func TestReportFormatsAgree(t *testing.T) {
	requireRoot(t)
	ex := growthExample(t)
	rec := filepath.Join(t.TempDir(), "run.rec")
	cmd := exec.Command(lsan(t), "run", "--record", rec, "--", ex.binary())
	cmd.Env = append(os.Environ(), "LSAN_EXAMPLE_REQUESTS=40", "LSAN_EXAMPLE_INTERVAL_MS=5")
	if code, _, errOut := runToEnd(t, cmd); code != 23 {
		t.Fatalf("lsan run: status %d\n%s", code, errOut)
	}
	_, text, _ := runLSan(t, nil, "report", rec)
	m := regexp.MustCompile(`SUMMARY: LeakSanitizer: (\d+) byte\(s\) leaked in (\d+) allocation\(s\)`).FindStringSubmatch(text)
	if m == nil || m[1] != "4208" || m[2] != "41" {
		t.Fatalf("text summary %v, want 4208 bytes in 41 allocations:\n%s", m, text)
	}
	prof := filepath.Join(t.TempDir(), "leaks.pb.gz")
	if code, _, errOut := runLSan(t, nil, "report", "--format", "pprof", "-o", prof, rec); code != 0 {
		t.Fatalf("lsan report --format pprof: %d\n%s", code, errOut)
	}
	top := goToolPprof(t, "-top", "-unit=byte", prof)
	if !strings.Contains(top, "Type: leaked_space") || !strings.Contains(top, "of 4208B total") {
		t.Errorf("pprof -top: no leaked_space total of 4208B:\n%s", top)
	}
	cum := map[string]string{}
	for _, l := range strings.Split(top, "\n") {
		f := strings.Fields(l)
		if len(f) == 6 && strings.HasSuffix(f[3], "B") {
			cum[f[5]] = f[3]
		}
	}
	for fn, want := range map[string]string{"leak_steadily": "3200B", "leak_at_startup": "1008B", "malloc": "4208B", "main": "4208B"} {
		if cum[fn] != want {
			t.Errorf("pprof -top: %s cum %q, want %s", fn, cum[fn], want)
		}
	}
	objects := goToolPprof(t, "-top", "-sample_index=leaked_objects", prof)
	if !strings.Contains(objects, "100% of 41 total") {
		t.Errorf("pprof leaked_objects total is not 41:\n%s", objects)
	}
	// -traces: one trace per group, its bytes and its frames as the text
	// report lists them.
	traces := goToolPprof(t, "-traces", "-unit=byte", prof)
	var got []string
	for _, tr := range strings.Split(traces, "-----------+-------------------------------------------------------")[1:] {
		var fns []string
		value := ""
		for _, l := range strings.Split(strings.TrimSpace(tr), "\n") {
			f := strings.Fields(l)
			if len(f) == 0 {
				continue
			}
			if strings.HasSuffix(f[0], "B") && len(f) > 1 {
				value = f[0]
				f = f[1:]
			}
			if f[0] == "kind:direct" || strings.HasPrefix(f[0], "bytes:") || strings.Contains(f[0], ":") {
				continue
			}
			fns = append(fns, f[0])
		}
		if value != "" {
			got = append(got, value+" "+strings.Join(fns, " "))
		}
	}
	sort.Strings(got)
	var want []string
	for _, blk := range regexp.MustCompile(`(?s)Direct leak of (\d+) byte\(s\).*?\n\n`).FindAllStringSubmatch(text, -1) {
		var fns []string
		for _, fm := range regexp.MustCompile(`#\d+ 0x[0-9a-f]+ in (\S+)`).FindAllStringSubmatch(blk[0], -1) {
			fns = append(fns, fm[1])
		}
		n, _ := strconv.Atoi(blk[1])
		want = append(want, fmt.Sprintf("%dB %s", n, strings.Join(fns, " ")))
	}
	sort.Strings(want)
	if len(want) != 2 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pprof -traces:\n%s\ntext report groups:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func goToolPprof(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", append(append([]string{"tool", "pprof", "-symbolize=none"}, args[:len(args)-1]...), args[len(args)-1])...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// runGrowthCopy runs a copy of examples/growth under lsan run with
// extra flags, then deletes the copy: the recording must be read where
// the binary is gone. It returns the copy's path and its build-id.
func runGrowthCopy(t *testing.T, requests int, args ...string) (string, string) {
	t.Helper()
	ex := growthExample(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "growth-copy")
	data, err := os.ReadFile(ex.binary())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bin, data, 0o755)
	out, err := exec.Command("readelf", "-n", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Build ID: ([0-9a-f]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no build-id in %s", bin)
	}
	all := append(append([]string{"run"}, args...), "--", bin)
	cmd := exec.Command(lsan(t), all...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("LSAN_EXAMPLE_REQUESTS=%d", requests), "LSAN_EXAMPLE_INTERVAL_MS=5")
	if code, _, errOut := runToEnd(t, cmd); code != 23 {
		t.Fatalf("lsan run: status %d\n%s", code, errOut)
	}
	return bin, string(m[1])
}

// TestReportElsewhere: a recording read where its binary is gone. With
// --record-symbols the stored frames name the functions; without, frames
// carry the module and build-id, and a --debug-dir holding the debug
// info under .build-id/xx/yyyy.debug names them again.
func TestReportElsewhere(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	withSyms, plain := filepath.Join(dir, "syms.rec"), filepath.Join(dir, "plain.rec")
	bin, id := runGrowthCopy(t, 10, "--record", withSyms, "--record-symbols")
	debug := filepath.Join(dir, "debug")
	dbg := filepath.Join(debug, ".build-id", id[:2], id[2:]+".debug")
	os.MkdirAll(filepath.Dir(dbg), 0o755)
	if out, err := exec.Command("objcopy", "--only-keep-debug", bin, dbg).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	os.Remove(bin)
	bin, _ = runGrowthCopy(t, 10, "--record", plain)
	os.Remove(bin)

	sites := func(args ...string) map[string]string {
		code, out, errOut := runLSan(t, nil, append([]string{"report", "--format", "json"}, args...)...)
		if code != 0 {
			t.Fatalf("lsan report %v: %d\n%s", args, code, errOut)
		}
		return verdicts(parseTimeline(t, out)[0])
	}
	want := "map[direct leak_at_startup:- 1008/1 direct leak_steadily:- 800/10]"
	if got := fmt.Sprint(sites(withSyms)); got != want {
		t.Errorf("--record-symbols: %s, want %s", got, want)
	}
	code, out, _ := runLSan(t, nil, "report", "--format", "json", plain)
	var sizes []string
	for _, g := range parseTimeline(t, out)[0].Leaks {
		if g.Stack[1].Function != "" {
			t.Errorf("binary gone, no debug info: frame #1 named %q", g.Stack[1].Function)
		}
		sizes = append(sizes, fmt.Sprintf("%d/%d", g.Bytes, g.Count))
	}
	if fmt.Sprint(sizes) != "[1008/1 800/10]" {
		t.Errorf("binary gone, no debug info: groups %v, want [1008/1 800/10]", sizes)
	}
	_, text, _ := runLSan(t, nil, "report", plain)
	if code != 0 || !strings.Contains(text, "(BuildId: "+id+")") {
		t.Errorf("binary gone: frames do not name the build-id %s:\n%s", id, text)
	}
	if got := fmt.Sprint(sites("--debug-dir", debug, plain)); got != want {
		t.Errorf("--debug-dir: %s, want %s", got, want)
	}
}

// TestBaseline: the CI question. A run leaking 10 times is the baseline;
// a run leaking 40 times shows only leak_steadily (larger, with the
// baseline's size), not the unchanged startup leak; against itself a
// run shows nothing and lsan exits 0. Recordings and JSON reports both
// serve as baselines.
func TestBaseline(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	base, baseJSON, cur := filepath.Join(dir, "base.rec"), filepath.Join(dir, "base.json"), filepath.Join(dir, "cur.rec")
	runGrowthCopy(t, 10, "--record", base, "--format", "json", "-o", baseJSON)
	runGrowthCopy(t, 40, "--record", cur)
	for _, b := range []string{base, baseJSON} {
		code, out, errOut := runLSan(t, nil, "report", "--format", "json", "--baseline", b, cur)
		if code != 0 {
			t.Fatalf("lsan report --baseline %s: %d\n%s", b, code, errOut)
		}
		r := parseTimeline(t, out)[0]
		if got := fmt.Sprint(verdicts(r)); got != "map[direct leak_steadily:- 3200/40]" || r.Hidden != 1 {
			t.Errorf("--baseline %s: %s, %d hidden; want leak_steadily alone, 1 hidden", filepath.Base(b), got, r.Hidden)
		}
		if !strings.Contains(out, `"baseline_bytes":800`) {
			t.Errorf("--baseline %s: no baseline_bytes 800 on leak_steadily: %s", filepath.Base(b), out)
		}
	}
	// Live: lsan run --baseline against a run like it finds nothing new.
	ex := growthExample(t)
	cmd := exec.Command(lsan(t), "run", "--baseline", base, "--", ex.binary())
	cmd.Env = append(os.Environ(), "LSAN_EXAMPLE_REQUESTS=10", "LSAN_EXAMPLE_INTERVAL_MS=5")
	code, out, errOut := runToEnd(t, cmd)
	if code != 0 || !strings.Contains(out, "lsan: 2 group(s) hidden: no larger than in the baseline") {
		t.Errorf("lsan run --baseline (same leaks): status %d, want 0 and 2 groups hidden\n%s\n%s", code, out, errOut)
	}
}

// TestReportBadInput: lsan report's mistakes get one line and the
// contract's status; a torn recording still renders, with a warning.
func TestReportBadInput(t *testing.T) {
	dir := t.TempDir()
	notRec := filepath.Join(dir, "notes.txt")
	os.WriteFile(notRec, []byte("Direct leak of 8 byte(s) in 1 object(s) allocated from:\n"), 0o644)
	v9 := filepath.Join(dir, "v9.rec")
	os.WriteFile(v9, []byte("LSANREC\n\x09\x00\x00\x00\x00\x00\x00\x00"), 0o644)
	cases := []struct {
		args []string
		code int
		line string
	}{
		{[]string{"report"}, 2, "lsan: lsan report needs one recording: lsan report [flags] FILE (see lsan --help)"},
		{[]string{"report", filepath.Join(dir, "missing.rec")}, 1, "lsan: read recording: open " + filepath.Join(dir, "missing.rec") + ": no such file or directory"},
		{[]string{"report", notRec}, 1, "lsan: " + notRec + ": not an lsan recording (no LSANREC header)"},
		{[]string{"report", notRec, "--only-growing"}, 2, "lsan: --only-growing after the recording: flags go first, lsan report [flags] FILE (see lsan --help)"},
		{[]string{"report", v9}, 1, "lsan: " + v9 + ": recording format version 9, this lsan reads version 1"},
		{[]string{"-p", "4194303", "--record", notRec}, 1, "lsan: " + notRec + ": not an lsan recording (no LSANREC header)"},
		{[]string{"report", "--format", "svg", notRec}, 2, `lsan: --format "svg": want text, json, html or pprof (see lsan --help)`},
		{[]string{"report", "--from", "yesterday", notRec}, 2, `lsan: --from "yesterday": want a time such as 2026-12-03T10:00:00Z or "2026-12-03 10:00:00" (see lsan --help)`},
		{[]string{"report", "--growth-window", "0", notRec}, 2, "lsan: --growth-window 0: want at least 1 check (see lsan --help)"},
		{[]string{"report", "--baseline", notRec, notRec}, 1, "lsan: " + notRec + ": not a recording or a JSON report"},
		{[]string{"-p", "4194303", "--record-symbols"}, 2, "lsan: --record-symbols needs --record FILE (see lsan --help)"},
		{[]string{"-p", "4194303", "--format", "html"}, 2, "lsan: --format html writes a file: give -o FILE (see lsan --help)"},
	}
	for _, c := range cases {
		code, _, stderr := runLSan(t, nil, c.args...)
		if code != c.code || strings.TrimSpace(stderr) != c.line {
			t.Errorf("lsan %v: status %d, stderr %q; want %d, %q", c.args, code, stderr, c.code, c.line)
		}
	}

	// Two snapshots, then half of a third: the two render.
	torn := filepath.Join(dir, "torn.rec")
	w, err := record.Create(torn)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		r := &report.Report{PID: 4, Time: time.Unix(int64(1700000000+10*i), 0), Mode: report.ModeLeaks,
			Groups: []report.Group{{Kind: report.Direct, Key: 1, Bytes: uint64(64 * i), Count: i, PCs: []uint64{0x10, 0x20}}}}
		w.Write(r, nil, false)
	}
	w.Close()
	st, _ := os.Stat(torn)
	os.Truncate(torn, st.Size()-10)
	code, out, stderr := runLSan(t, nil, "report", "--format", "json", torn)
	if code != 0 || !regexp.MustCompile(`^lsan: warning: .*torn.rec: the last \d+ byte\(s\) are no complete snapshot \(torn record at byte \d+\): left out\n$`).MatchString(stderr) {
		t.Errorf("torn recording: status %d, stderr %q", code, stderr)
	}
	if r := parseTimeline(t, out)[0]; r.Summary.Bytes != 128 || r.Timeline == nil || r.Timeline.Checks != 2 {
		t.Errorf("torn recording: %+v, want the second snapshot (128 bytes) of 2", r)
	}
}

// evilSource leaks from operator< and from a template instance: C++
// names with '<' and '&', compiled from a path holding markup.
const evilSource = `#include <cstdlib>
#include <cstring>
struct Box { int v; };
__attribute__((noinline)) bool operator<(const Box &a, const Box &b)
{
	char *lost = static_cast<char *>(malloc(48));
	memset(lost, 1, 48);
	return a.v < b.v;
}
template <class T> __attribute__((noinline)) T *keep_box() { return new T(); }
int main()
{
	Box a{1}, b{2};
	bool less = a < b;
	Box *p = keep_box<Box>();
	p = nullptr;
	return less ? 0 : 1;
}
`

// TestHTMLEscapesTargetStrings: a real program whose source path holds
// <script> and & and whose functions are operator< and a template,
// recorded by lsan run and rendered as HTML, shows those strings as text
// in headless Chromium, with no script run and nothing logged.
func TestHTMLEscapesTargetStrings(t *testing.T) {
	requireRoot(t)
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is required (CI is set): %v", err)
		}
		t.Skip("chromium not installed")
	}
	dir := filepath.Join(t.TempDir(), `x<script>window.__xss=1<`, `script>&amp;y`)
	os.MkdirAll(dir, 0o755)
	src := filepath.Join(dir, "evil.cc")
	os.WriteFile(src, []byte(evilSource), 0o644)
	bin := filepath.Join(t.TempDir(), "evil")
	if out, err := exec.Command("g++", "-g", "-O0", "-fno-omit-frame-pointer", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("g++: %v\n%s", err, out)
	}
	rec := filepath.Join(t.TempDir(), "evil.rec")
	if code, _, errOut := runLSan(t, nil, "run", "--record", rec, "--", bin); code != 23 {
		t.Fatalf("lsan run: status %d, want 23\n%s", code, errOut)
	}
	page := filepath.Join(t.TempDir(), "evil.html")
	if code, _, errOut := runLSan(t, nil, "report", "--format", "html", "-o", page, rec); code != 0 {
		t.Fatalf("lsan report --format html: %d\n%s", code, errOut)
	}
	data, _ := os.ReadFile(page)
	if strings.Contains(string(data), "<script>window") {
		t.Fatalf("the source path is markup in the page")
	}
	// Expand every group, then report the frames' text and what ran.
	driver := `<script>
document.querySelectorAll("tr.group").forEach(function (r) { r.click(); });
var t = Array.prototype.map.call(document.querySelectorAll("tr.frames li"), function (li) { return li.textContent; }).join("\n");
document.body.setAttribute("data-t-frames", t);
document.body.setAttribute("data-t-scripts", String(document.querySelectorAll("script").length));
document.body.setAttribute("data-t-xss", String(window.__xss || 0));
</script></body>`
	driven := filepath.Join(t.TempDir(), "driven.html")
	os.WriteFile(driven, []byte(strings.Replace(string(data), "</body>", driver, 1)), 0o644)
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+t.TempDir(),
		"--enable-logging=stderr", "--v=0", "--dump-dom", "file://"+driven)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	attr := func(name string) string {
		m := regexp.MustCompile(`data-t-` + name + `="([^"]*)"`).FindStringSubmatch(stdout.String())
		if m == nil {
			t.Fatalf("no %s in the DOM", name)
		}
		return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&quot;", `"`, "&amp;", "&").Replace(m[1])
	}
	frames := attr("frames")
	for _, want := range []string{
		"operator<(Box const&, Box const&) " + src + ":6:",
		"Box* keep_box<Box>() " + src + ":10:",
	} {
		if !strings.Contains(frames, want) {
			t.Errorf("expanded frames lack %q:\n%s", want, frames)
		}
	}
	if attr("scripts") != "3" || attr("xss") != "0" {
		t.Errorf("scripts %s, __xss %s: markup from the target ran", attr("scripts"), attr("xss"))
	}
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(l, ":CONSOLE") {
			t.Errorf("console: %s", l)
		}
	}
}

// TestLiveFileFormats: --format html and pprof with lsan run --interval
// rewrite their -o file after each check; the last one holds the whole
// timeline (html) or the check at exit (pprof).
func TestLiveFileFormats(t *testing.T) {
	requireRoot(t)
	ex := growthExample(t)
	dir := t.TempDir()
	for _, format := range []string{"html", "pprof"} {
		out := filepath.Join(dir, "growth."+format)
		cmd := exec.Command(lsan(t), "run", "--interval", "300ms", "--format", format, "-o", out, "--", ex.binary())
		cmd.Env = append(os.Environ(), "LSAN_EXAMPLE_REQUESTS=40", "LSAN_EXAMPLE_INTERVAL_MS=50")
		if code, _, errOut := runToEnd(t, cmd); code != 23 {
			t.Fatalf("lsan run --format %s: status %d\n%s", format, code, errOut)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if format == "html" {
			page := string(data)
			m := regexp.MustCompile(`"times":\[([0-9,]+)\]`).FindStringSubmatch(page)
			if m == nil || strings.Count(m[1], ",") < 4 {
				t.Errorf("page has not the run's checks: %v", m)
			}
			if !strings.Contains(page, `"kind":"direct","bytes":3200,"count":40,"verdict":"growing"`) {
				t.Errorf("page lacks the growing leak_steadily group of 3200 bytes")
			}
			continue
		}
		top := goToolPprof(t, "-top", "-unit=byte", out)
		if !strings.Contains(top, "of 4208B total") {
			t.Errorf("pprof written live: not the check at exit's 4208 bytes:\n%s", top)
		}
	}
}
