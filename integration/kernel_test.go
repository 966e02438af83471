package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lsan-project/lsan/internal/testproc"
)

// kernelReport is the part of `lsan kernel --format json` the tests read.
type kernelReport struct {
	Time      time.Time     `json:"time"`
	Leaks     []kernelGroup `json:"leaks"`
	Processes []struct {
		PID   int    `json:"pid"`
		Comm  string `json:"comm"`
		Count int    `json:"count"`
	} `json:"processes"`
	Stats struct {
		Blocks int `json:"blocks"`
	} `json:"stats"`
	Dropped struct {
		Allocs uint64 `json:"allocs"`
	} `json:"dropped"`
	Complete bool `json:"complete"`
	Final    bool `json:"final"`
}

// underPath sums the objects of cache (any, when "") whose stack passes
// through fn, and the share of them pid allocated.
func (r kernelReport) underPath(fn, cache string, pid int) (count, byPID int) {
	for _, g := range r.groupsUnder(fn, cache) {
		count += g.Count
		for _, p := range g.Processes {
			if p.PID == pid {
				byPID += p.Count
			}
		}
	}
	return count, byPID
}

// kernelGroup is one group of a kernel report.
type kernelGroup = struct {
	Count       int    `json:"count"`
	Bytes       uint64 `json:"bytes"`
	Event       string `json:"event"`
	Cache       string `json:"cache"`
	GrowthCount int    `json:"growth_count"`
	Trend       *struct {
		Verdict string `json:"verdict"`
	} `json:"trend"`
	Stack []struct {
		Function string `json:"function"`
		Module   string `json:"module"`
	} `json:"stack"`
	Processes []struct {
		PID   int `json:"pid"`
		Count int `json:"count"`
	} `json:"processes"`
}

// groupsUnder returns the groups of cache (any cache if empty) whose stack
// passes through fn. One kernel path can be stored as several stacks (the
// open path's RCU walk and its retry are two call sites of the same
// functions), so a test of one path looks at all of them.
func (r kernelReport) groupsUnder(fn, cache string) []kernelGroup {
	var out []kernelGroup
	for _, g := range r.Leaks {
		if cache != "" && g.Cache != cache {
			continue
		}
		for _, f := range g.Stack {
			if f.Function == fn {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// growingUnder tells whether some group of cache under fn grew since the
// check before (growth) or is judged growing by its trend (trend).
func (r kernelReport) growingUnder(fn, cache string) (growth, trend bool) {
	for _, g := range r.groupsUnder(fn, cache) {
		growth = growth || g.GrowthCount > 0
		trend = trend || (g.Trend != nil && g.Trend.Verdict == "growing")
	}
	return growth, trend
}

// buildC compiles one C program of testdata.
func buildC(t *testing.T, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	src := filepath.Join(repoRoot, "integration", "testdata", name+".c")
	if out, err := exec.Command("cc", "-O1", "-Wall", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("cc %s: %v\n%s", src, err, out)
	}
	return bin
}

// kernelRun is a running `lsan kernel` writing JSON reports to a file.
type kernelRun struct {
	cmd    *exec.Cmd
	out    string
	stderr *syncBuffer
}

func startKernel(t *testing.T, args ...string) *kernelRun {
	t.Helper()
	k := &kernelRun{out: filepath.Join(t.TempDir(), "kernel.jsonl"), stderr: &syncBuffer{}}
	cmd := exec.Command(lsan(t), append([]string{"kernel", "--format", "json", "--top", "0", "-o", k.out}, args...)...)
	cmd.Stderr = k.stderr
	k.cmd = cmd
	startGroup(t, cmd)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(k.stderr.String(), "tracing kernel allocations") {
		if time.Now().After(deadline) {
			t.Fatalf("lsan kernel did not start: %s", k.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return k
}

// reports returns every complete report written so far.
func (k *kernelRun) reports(t *testing.T) []kernelReport {
	t.Helper()
	f, err := os.Open(k.out)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []kernelReport
	br := bufio.NewReader(f)
	for {
		line, err := br.ReadString('\n')
		if err == io.EOF {
			return out // a partial last line is not a report yet
		}
		var r kernelReport
		if jerr := json.Unmarshal([]byte(line), &r); jerr != nil {
			t.Fatalf("bad JSON report: %v: %s", jerr, line)
		}
		out = append(out, r)
	}
}

// waitReport waits for a report written after since that satisfies ok.
func (k *kernelRun) waitReport(t *testing.T, since time.Time, what string, ok func(kernelReport) bool) kernelReport {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last kernelReport
	for time.Now().Before(deadline) {
		for _, r := range k.reports(t) {
			if r.Time.After(since) {
				last = r
				if ok(r) {
					return r
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no report with %s; last: %+v\nstderr: %s", what, last, k.stderr.String())
	return last
}

// The syscall paths of the fixture's objects, each with a cache every
// one of its objects has exactly one object in.
var kernelPaths = []struct{ fn, cache string }{
	{"do_pipe2", "filp"}, // two files per pipe: counted as 2N below
	{"do_eventfd", "filp"},
	{"do_epoll_create", "filp"},
	{"__sys_socket", "filp"},
}

// TestKernelObjects: N pipes, eventfds, epoll instances and sockets each
// appear under the syscall that created them with at least N objects, all
// attributed to the fixture; a struct file each (2 per pipe), exactly;
// after the fixture closes them, those groups are gone. --older hides
// them while they are younger than its value.
func TestKernelObjects(t *testing.T) {
	requireRoot(t)
	const n = 64
	fixture := exec.Command(buildC(t, "kobjects"), fmt.Sprint(n))
	p := testproc.Start(t, fixture)
	pid := p.Cmd.Process.Pid
	all := startKernel(t, "--pid", fmt.Sprint(pid), "-i", "1s")
	older := startKernel(t, "--pid", fmt.Sprint(pid), "-i", "1s", "--older", "4s")

	io.WriteString(p.Stdin, "create\n")
	p.Expect(t, "ready")
	created := time.Now()
	held := func(r kernelReport) bool {
		for _, path := range kernelPaths {
			if c, _ := r.underPath(path.fn, "", pid); c < n {
				return false
			}
		}
		return true
	}
	r := all.waitReport(t, created, "every path holding N objects", held)
	before := map[string]int{}
	for _, path := range kernelPaths {
		count, byPID := r.underPath(path.fn, "", pid)
		before[path.fn] = count
		if count < n || byPID != count {
			t.Errorf("%s: %d object(s), %d by pid %d; want at least %d, all by the fixture", path.fn, count, byPID, pid, n)
		}
		files, _ := r.underPath(path.fn, path.cache, pid)
		want := n
		if path.fn == "do_pipe2" {
			want = 2 * n
		}
		if files != want {
			t.Errorf("%s: %d %s object(s), want exactly %d", path.fn, files, path.cache, want)
		}
	}
	if len(r.Processes) != 1 || r.Processes[0].PID != pid || r.Processes[0].Comm != "kobjects" {
		t.Errorf("processes = %+v, want the fixture alone (pid %d, kobjects)", r.Processes, pid)
	}

	// --older 4s: nothing of it before it is 4 s old, all of it after.
	for _, r := range older.reports(t) {
		if r.Time.After(created) && r.Time.Before(created.Add(3500*time.Millisecond)) {
			if c, _ := r.underPath("do_pipe2", "", pid); c != 0 {
				t.Errorf("--older 4s at %v after creation: %d pipe object(s) shown, want 0", r.Time.Sub(created), c)
			}
		}
	}
	older.waitReport(t, created.Add(4500*time.Millisecond), "--older 4s showing the objects once old enough", held)

	io.WriteString(p.Stdin, "close\n")
	p.Expect(t, "closed")
	closed := time.Now()
	r = all.waitReport(t, closed, "the closed objects gone", func(r kernelReport) bool {
		for _, path := range kernelPaths {
			if c, _ := r.underPath(path.fn, path.cache, pid); c != 0 {
				return false
			}
		}
		return true
	})
	// Objects the kernel frees in RCU batches without a per-object
	// tracepoint (epoll's struct eventpoll) can stay listed: every path
	// must still shrink by at least its N files (docs/kernel.md, limits).
	for _, path := range kernelPaths {
		if c, _ := r.underPath(path.fn, "", pid); c > before[path.fn]-n {
			t.Errorf("%s: %d object(s) live after close, %d before: want at least %d fewer", path.fn, c, before[path.fn], n)
		}
	}
}

// TestKernelGrowingLeak: a process that opens files and never closes them
// is a group whose count rises at every check.
func TestKernelGrowingLeak(t *testing.T) {
	requireRoot(t)
	p := testproc.Start(t, exec.Command(buildC(t, "kleak")))
	p.Expect(t, "ready")
	pid := p.Cmd.Process.Pid
	k := startKernel(t, "--pid", fmt.Sprint(pid), "-i", "1s", "--cache", "filp")
	start := time.Now()
	k.waitReport(t, start, "four checks", func(kernelReport) bool { return len(k.reports(t)) >= 4 })
	reports := k.reports(t)
	prev := -1
	for i, r := range reports[:4] {
		count, byPID := r.underPath("do_sys_openat2", "filp", pid)
		if byPID != count {
			t.Errorf("check %d: %d of %d open files by pid %d, want all", i, byPID, count, pid)
		}
		if count <= prev {
			t.Errorf("check %d: %d open file object(s), not more than the %d before", i, count, prev)
		}
		if growth, _ := r.growingUnder("do_sys_openat2", "filp"); i > 0 && !growth {
			t.Errorf("check %d: no open-file group with growth_count > 0: %+v", i, r.groupsUnder("do_sys_openat2", "filp"))
		}
		prev = count
	}
}

// TestKernelTimeline: lsan kernel's checks go through the timeline of
// every mode: the steadily growing open-file group is judged growing live
// and in its recording, which lsan report renders as text, html and
// pprof with the kernel frames stored at record time.
func TestKernelTimeline(t *testing.T) {
	requireRoot(t)
	p := testproc.Start(t, exec.Command(buildC(t, "kleak")))
	p.Expect(t, "ready")
	pid := fmt.Sprint(p.Cmd.Process.Pid)
	dir := t.TempDir()
	rec := filepath.Join(dir, "kernel.rec")
	page := filepath.Join(dir, "kernel.html")
	k := startKernel(t, "--pid", pid, "-i", "500ms", "-n", "5", "--cache", "filp", "--record", rec)
	html := exec.Command(lsan(t), "kernel", "--pid", pid, "-i", "500ms", "-n", "5", "--cache", "filp", "--format", "html", "-o", page)
	if code, _, stderr := runToEnd(t, html); code != 0 {
		t.Fatalf("lsan kernel --format html: status %d\n%s", code, stderr)
	}
	if err := k.cmd.Wait(); err != nil {
		t.Fatalf("lsan kernel --record: %v\n%s", err, k.stderr.String())
	}
	reports := k.reports(t)
	if len(reports) != 5 {
		t.Fatalf("%d reports, want 5", len(reports))
	}
	last := reports[4]
	if _, trend := last.growingUnder("do_sys_openat2", "filp"); !trend {
		t.Errorf("last check: %+v; want an open-file group growing", last.groupsUnder("do_sys_openat2", "filp"))
	}
	if c, _ := last.underPath("do_sys_openat2", "filp", p.Cmd.Process.Pid); c == 0 {
		t.Errorf("last check: no open file under do_sys_openat2")
	}

	out, err := exec.Command(lsan(t), "report", "--only-growing", rec).CombinedOutput()
	if err != nil {
		t.Fatalf("lsan report: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"in alloc_empty_file (vmlinux+0x", "in do_sys_openat2 (vmlinux+0x", "    trend: growing, ", "timeline: 5 check(s)"} {
		if !strings.Contains(text, want) {
			t.Errorf("lsan report of the recording lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, " 0 growing group(s)") {
		t.Errorf("lsan report of the recording finds nothing growing:\n%s", text)
	}
	prof := filepath.Join(dir, "kernel.pb.gz")
	if out, err := exec.Command(lsan(t), "report", "--format", "pprof", "-o", prof, rec).CombinedOutput(); err != nil {
		t.Fatalf("lsan report --format pprof: %v\n%s", err, out)
	}
	if top := goToolPprof(t, "-top", "-unit=byte", prof); !strings.Contains(top, "do_sys_openat2") || !strings.Contains(top, "alloc_empty_file") {
		t.Errorf("profile of the recording lacks the open path:\n%s", top)
	}
	data, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"verdict":"growing"`, `"fn":"alloc_empty_file"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("live html page lacks %s", want)
		}
	}
}

// TestKernelErrors: missing privileges and a kernel without the
// tracepoints each give one line and status 1; bad flags status 2.
func TestKernelErrors(t *testing.T) {
	requireRoot(t)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	noTracepoints := filepath.Join(repoRoot, "ktrace", "ktrace_x86_bpfel.o") // BTF without any kernel tracepoint
	for _, c := range []struct {
		name string
		cred *syscall.Credential
		env  []string
		args []string
		code int
		want string
	}{
		{"nobody", nobody, nil, nil, 1, "lsan: missing CAP_BPF, CAP_PERFMON"},
		{"no tracepoints", nil, []string{"LSAN_KERNEL_BTF=" + noTracepoints}, nil, 1, "lsan: this kernel has none of the kmem/percpu allocation tracepoints lsan kernel needs"},
		{"older", nil, nil, []string{"--older", "-5s"}, 2, "lsan: --older -5s: an age cannot be negative"},
		{"pid and comm", nil, nil, []string{"--pid", "1", "--comm", "x"}, 2, "lsan: --pid and --comm: give one of them"},
		{"format", nil, nil, []string{"--format", "xml"}, 2, `lsan: --format "xml": lsan kernel writes text, json, html or pprof`},
		{"html without a file", nil, nil, []string{"--format", "html"}, 2, "lsan: --format html writes a file: give -o FILE"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(lsan(t), append([]string{"kernel", "-n", "1", "-i", "100ms"}, c.args...)...)
			cmd.Env = append(os.Environ(), c.env...)
			if c.cred != nil {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
			}
			code, _, stderr := runToEnd(t, cmd)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if code != c.code || len(lines) != 1 || !strings.HasPrefix(lines[0], c.want) {
				t.Errorf("status %d, stderr %q; want %d and one line starting %q", code, stderr, c.code, c.want)
			}
		})
	}
}

// TestKernelInterrupt: Ctrl-C writes one final report and exits 0.
func TestKernelInterrupt(t *testing.T) {
	requireRoot(t)
	k := startKernel(t, "-i", "1h")
	k.cmd.Process.Signal(syscall.SIGINT)
	err := k.cmd.Wait()
	if err != nil {
		t.Fatalf("lsan kernel after Ctrl-C: %v; stderr: %s", err, k.stderr.String())
	}
	reports := k.reports(t)
	if len(reports) != 1 || !reports[0].Final {
		t.Fatalf("%d report(s) after one Ctrl-C (%+v), want 1 final", len(reports), reports)
	}
}

// TestKernelMapFull: with room for 100 objects, the fixture's ~1,600 fill
// the map; the rest are counted as dropped, and the report says it is
// incomplete.
func TestKernelMapFull(t *testing.T) {
	requireRoot(t)
	p := testproc.Start(t, exec.Command(buildC(t, "kobjects"), "64"))
	pid := p.Cmd.Process.Pid
	k := startKernel(t, "--pid", fmt.Sprint(pid), "-i", "500ms", "--max-objects", "100")
	io.WriteString(p.Stdin, "create\n")
	p.Expect(t, "ready")
	r := k.waitReport(t, time.Now(), "drops", func(r kernelReport) bool { return r.Dropped.Allocs >= 1000 })
	if r.Stats.Blocks != 100 || r.Complete {
		t.Errorf("map of 100: %d objects held, complete %v; want 100, false", r.Stats.Blocks, r.Complete)
	}
}

// TestKernelNoStacks: without stack walks, the fixture's struct files
// (2 per pipe, 1 per eventfd, epoll instance and socket) form one group
// under their call site, alloc_empty_file: exactly 5N objects.
func TestKernelNoStacks(t *testing.T) {
	requireRoot(t)
	const n = 64
	p := testproc.Start(t, exec.Command(buildC(t, "kobjects"), fmt.Sprint(n)))
	pid := p.Cmd.Process.Pid
	k := startKernel(t, "--pid", fmt.Sprint(pid), "-i", "500ms", "--no-stacks", "--cache", "filp")
	io.WriteString(p.Stdin, "create\n")
	p.Expect(t, "ready")
	r := k.waitReport(t, time.Now(), "5N files", func(r kernelReport) bool {
		c, _ := r.underPath("alloc_empty_file", "filp", pid)
		return c >= 5*n
	})
	if len(r.Leaks) != 1 || len(r.Leaks[0].Stack) != 1 || r.Leaks[0].Count != 5*n {
		t.Errorf("--no-stacks: %+v; want one group of %d filp objects with one frame, alloc_empty_file", r.Leaks, 5*n)
	}
}
