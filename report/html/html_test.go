package html

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/symbolize"
	"github.com/lsan-project/lsan/timeline"
)

// Strings from the target that are markup: they must show as text.
const (
	evilFunction = `<script>window.__xss=1</script>&amp; std::less<int>::operator<(int const&)`
	evilFile     = `/src/<img src=x onerror="window.__xss=2">&lt;/a.c`
)

func evilReport() *report.Report {
	tl := timeline.New(timeline.Options{})
	var r *report.Report
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 5; i++ {
		r = &report.Report{PID: 77, Time: t0.Add(time.Duration(i) * 10 * time.Second), Mode: report.ModeLeaks,
			Groups: []report.Group{
				{Kind: report.Direct, Key: 1, Bytes: uint64(80 * (i + 1)), Count: i + 1, Stack: []symbolize.Frame{
					{PC: 0x7f00, Function: "malloc", Module: "/lib/libc.so.6", ModuleOffset: 0x100},
					{PC: 0x5500, Function: evilFunction, File: evilFile, Line: 12, Column: 3, Inlined: true},
					{PC: 0x5500, Function: "main", File: "/src/main.c", Line: 40},
				}},
				{Kind: report.Direct, Key: 2, Bytes: 1008, Count: 1, Stack: []symbolize.Frame{
					{PC: 0x7f00, Function: "malloc"}, {PC: 0x5600, Module: "/srv/<b>app</b>", ModuleOffset: 0x600},
				}},
			}}
		tl.Add(r)
	}
	return r
}

// The Go side: target strings never appear as markup in the file.
func TestEscapedInFile(t *testing.T) {
	var b bytes.Buffer
	if err := Write(&b, []*report.Report{evilReport()}); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, bad := range []string{"<script>window", "<img", "<b>app"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q as markup", bad)
		}
	}
	if !strings.Contains(page, `\u003cscript\u003ewindow.__xss=1\u003c/script\u003e\u0026amp;`) {
		t.Errorf("function name not carried as escaped JSON")
	}
	for _, remote := range regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//`).FindAllString(page, -1) {
		t.Errorf("page refers to a remote resource: %s", remote)
	}
}

// driver is appended to the page under test: it clicks the first group
// and writes what it finds into attributes of <body>, which
// chromium --dump-dom prints.
const driver = `<script>
(function () {
  var b = document.body, res = {};
  res.rendered = b.getAttribute("data-rendered") || "0";
  var chart = document.querySelector("svg[data-chart] polyline");
  res.chartPoints = chart ? chart.getAttribute("points").trim().split(/\s+/).length : 0;
  res.flameBoxes = document.querySelectorAll("[data-flame] div").length;
  var rows = document.querySelectorAll("tr.group");
  res.groups = rows.length;
  res.firstVerdict = rows.length ? rows[0].querySelector(".badge").textContent : "";
  res.sparklines = document.querySelectorAll("tr.group svg polyline").length;
  if (rows.length) rows[0].click();
  var frames = document.querySelectorAll("tr.frames li");
  res.frames = frames.length;
  res.frameTexts = Array.prototype.map.call(frames, function (li) { return li.textContent; }).join("\n");
  res.scripts = document.querySelectorAll("script").length;
  res.imgs = document.querySelectorAll("img").length;
  res.xss = String(window.__xss || 0);
  res.resources = performance.getEntriesByType("resource").length;
  var s = document.querySelector("[data-search]");
  s.value = "no such function";
  s.dispatchEvent(new Event("input"));
  res.visibleAfterSearch = Array.prototype.filter.call(rows, function (r) { return r.style.display !== "none"; }).length;
  for (var k in res) b.setAttribute("data-t-" + k.toLowerCase(), String(res[k]));
})();
</script></body>`

// The page in headless Chromium: it renders, the chart and the flame
// graph exist, expanding a group shows its frames (the evil ones as
// text), search filters, nothing is fetched and nothing is logged.
func TestChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser (-short: pure logic only)")
	}
	chromium := chromiumPath(t)
	var b bytes.Buffer
	if err := Write(&b, []*report.Report{evilReport()}); err != nil {
		t.Fatal(err)
	}
	page := strings.Replace(b.String(), "</body>", driver, 1)
	dom, console := dumpDOM(t, chromium, page)
	attr := func(name string) string {
		m := regexp.MustCompile(`data-t-` + name + `="([^"]*)"`).FindStringSubmatch(dom)
		if m == nil {
			t.Fatalf("driver result %s missing; DOM:\n%s", name, dom)
		}
		return htmlUnescape(m[1])
	}
	want := map[string]string{
		"rendered": "1", "chartpoints": "5", "groups": "2", "firstverdict": "growing", "sparklines": "2",
		"frames": "3", "scripts": "3", "imgs": "0", "xss": "0", "resources": "0", "visibleaftersearch": "0",
	}
	for k, v := range want {
		if got := attr(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if n := attr("flameboxes"); n == "0" {
		t.Errorf("flame graph empty")
	}
	texts := attr("frametexts")
	for _, s := range []string{evilFunction + " " + evilFile + ":12:3", "main /src/main.c:40"} {
		if !strings.Contains(texts, s) {
			t.Errorf("expanded frames lack %q as text:\n%s", s, texts)
		}
	}
	if console != "" {
		t.Errorf("console output (errors, blocked requests):\n%s", console)
	}
}

func chromiumPath(t testing.TB) string {
	p, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is required (CI is set): %v", err)
		}
		t.Skipf("chromium not installed: %v", err)
	}
	return p
}

// dumpDOM loads page in headless Chromium and returns the DOM after its
// scripts ran and every console message (CSP violations included).
func dumpDOM(t testing.TB, chromium, page string) (dom, console string) {
	dir := t.TempDir()
	path := filepath.Join(dir, "page.html")
	os.WriteFile(path, []byte(page), 0o644)
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", "file://"+path)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, errb.String())
	}
	var lines []string
	for _, l := range strings.Split(errb.String(), "\n") {
		if strings.Contains(l, ":CONSOLE") {
			lines = append(lines, l)
		}
	}
	return out.String(), strings.Join(lines, "\n")
}

func htmlUnescape(s string) string {
	r := strings.NewReplacer("&lt;", "<", "&gt;", ">", "&quot;", `"`, "&#39;", "'", "&amp;", "&")
	return r.Replace(s)
}

// bigReport is 1,000 checks of 1,000 groups: a third growing, a third
// flat, a third shrinking, each with a 6-frame stack.
func bigReport() *report.Report {
	tl := timeline.New(timeline.Options{})
	t0 := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	var r *report.Report
	for i := 0; i < 1000; i++ {
		r = &report.Report{PID: 1, Time: t0.Add(time.Duration(i) * 10 * time.Second), Mode: report.ModeOutstanding}
		for g := 0; g < 1000; g++ {
			bytes := uint64(1000)
			switch g % 3 {
			case 0:
				bytes += uint64(i * 16)
			case 2:
				bytes += uint64((1000 - i) * 16)
			}
			r.Groups = append(r.Groups, report.Group{Kind: report.Outstanding, Key: uint64(g), Bytes: bytes, Count: int(bytes / 16)})
		}
		tl.Add(r)
	}
	for g := range r.Groups {
		var st []symbolize.Frame
		for d := 0; d < 6; d++ {
			st = append(st, symbolize.Frame{PC: uint64(0x1000*g + d), Function: fmt.Sprintf("fn_%d_%d", g%50, d), File: "/src/big.c", Line: d + 1})
		}
		r.Groups[g].Stack = st
	}
	return r
}

// BenchmarkWrite1000x1000: the Go side of a 1,000 checks x 1,000 groups
// page (docs/PERFORMANCE.md).
func BenchmarkWrite1000x1000(b *testing.B) {
	r := bigReport()
	var size int
	for b.Loop() {
		var buf bytes.Buffer
		if err := Write(&buf, []*report.Report{r}); err != nil {
			b.Fatal(err)
		}
		size = buf.Len()
	}
	b.ReportMetric(float64(size), "page-bytes")
}

// BenchmarkChromium1000x1000: the page of 1,000 checks x 1,000 groups
// loaded and rendered by headless Chromium (process start included).
func BenchmarkChromium1000x1000(b *testing.B) {
	chromium := chromiumPath(b)
	var buf bytes.Buffer
	if err := Write(&buf, []*report.Report{bigReport()}); err != nil {
		b.Fatal(err)
	}
	page := strings.Replace(buf.String(), "</body>", driver, 1)
	for b.Loop() {
		dom, console := dumpDOM(b, chromium, page)
		if !strings.Contains(dom, `data-t-groups="1000"`) || console != "" {
			b.Fatalf("page did not render 1000 groups (console: %s)", console)
		}
	}
}
