// Package integration runs the lsan binary against real programs: the
// examples corpus and real daemons. Tests need root (BPF, ptrace); with CI
// set they fail instead of skipping when they cannot run.
package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lsan-project/lsan/internal/testproc"
)

var (
	repoRoot  = func() string { d, _ := filepath.Abs(".."); return d }()
	lsanBin   string
	buildOnce sync.Once
	buildErr  error
)

// requireRoot skips (or, in CI, fails) a test that needs BPF and ptrace.
func requireRoot(t *testing.T) {
	t.Helper()
	testproc.RequireRoot(t, "integration tests")
}

// lsan returns the path of a freshly built lsan binary and the examples.
func lsan(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		lsanBin = filepath.Join(os.TempDir(), fmt.Sprintf("lsan-itest-%d", os.Getpid()))
		cmd := exec.Command("go", "build", "-o", lsanBin, "./cmd/lsan")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		cmd = exec.Command("make", "-s", "-C", "examples")
		cmd.Dir = repoRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("make -C examples: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return lsanBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if lsanBin != "" {
		os.Remove(lsanBin)
	}
	os.Exit(code)
}

// example is one program of the corpus with its expectations.
type example struct {
	Name        string
	Description string `json:"description"`
	Lang        string `json:"lang"`
	Run         struct {
		LDPreload  string            `json:"ld_preload"`
		StaticMusl bool              `json:"static_musl"`
		Env        map[string]string `json:"env"`
		// LSanArgs are flags lsan needs for the example (--alloc-fn).
		LSanArgs []string `json:"lsan_args"`
	} `json:"run"`
	Outstanding []expectGroup `json:"outstanding"`
	Leaks       []expectGroup `json:"leaks"`
	// AttachLeaks, when present, is what lsan -p reports where it must
	// differ from LSan and lsan run (its roots are more conservative).
	AttachLeaks []expectGroup `json:"attach_leaks"`
	// Children are the leaks of each forked child, in fork order, under
	// lsan run --follow-forks.
	Children   [][]expectGroup `json:"children"`
	LSanParity bool            `json:"lsan_parity"`
}

type expectGroup struct {
	Kind     string `json:"kind,omitempty"`
	Function string `json:"function"`
	Bytes    uint64 `json:"bytes"`
	Count    int    `json:"count"`
}

func (g expectGroup) String() string {
	return fmt.Sprintf("%s %s: %d byte(s) in %d object(s)", g.Kind, g.Function, g.Bytes, g.Count)
}

func loadExamples(t *testing.T) []example {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "examples", "*", "expected.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found (%v)", err)
	}
	var out []example
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var ex example
		if err := json.Unmarshal(data, &ex); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		ex.Name = filepath.Base(filepath.Dir(f))
		out = append(out, ex)
	}
	return out
}

func (ex example) binary() string {
	return filepath.Join(repoRoot, "examples", "bin", ex.Name)
}

func (ex example) env() []string {
	env := append(os.Environ(), "LSAN_EXAMPLE_DAEMON=1")
	if ex.Run.LDPreload != "" {
		env = append(env, "LD_PRELOAD="+ex.Run.LDPreload)
	}
	for k, v := range ex.Run.Env {
		env = append(env, k+"="+v)
	}
	return env
}

// process is a running example following the ready/line/done protocol.
type process struct{ *testproc.Proc }

func startExample(t *testing.T, ex example) *process {
	t.Helper()
	cmd := exec.Command(ex.binary())
	cmd.Env = ex.env()
	p := &process{testproc.Start(t, cmd)}
	p.Expect(t, "ready")
	return p
}

func (p *process) trigger(t *testing.T) {
	t.Helper()
	io.WriteString(p.Stdin, "go\n")
	p.Expect(t, "done")
}

// attached is a running `lsan -p`.
type attached struct {
	cmd    *exec.Cmd
	stdout *strings.Builder
	stderr *syncBuffer
}

// attach starts lsan on pid and waits for its "attached to pid" line.
func attach(t *testing.T, pid int, args ...string) *attached {
	t.Helper()
	return attachEnv(t, pid, nil, args...)
}

// attachEnv is attach with extra environment variables for lsan.
func attachEnv(t *testing.T, pid int, env []string, args ...string) *attached {
	t.Helper()
	all := append([]string{"-p", fmt.Sprint(pid)}, args...)
	cmd := exec.Command(lsan(t), all...)
	cmd.Env = append(os.Environ(), env...)
	a := &attached{cmd: cmd, stdout: &strings.Builder{}, stderr: &syncBuffer{}}
	cmd.Stdout = a.stdout
	cmd.Stderr = a.stderr
	inOwnGroup(t, cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("attached to pid %d", pid)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(a.stderr.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("lsan did not attach: %s", a.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return a
}

// stop interrupts lsan (final report) and returns its exit status.
func (a *attached) stop(t *testing.T) int {
	t.Helper()
	a.cmd.Process.Signal(syscall.SIGINT)
	return a.wait(t)
}

// wait waits for lsan to end on its own (--count) and returns its exit
// status.
func (a *attached) wait(t *testing.T) int {
	t.Helper()
	err := a.cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("lsan: %v", err)
	}
	return 0
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// jsonReport is the part of lsan's JSON report the tests read.
type jsonReport struct {
	PID   int    `json:"pid"`
	Mode  string `json:"mode"`
	Leaks []struct {
		Kind  string `json:"kind"`
		Bytes uint64 `json:"bytes"`
		Count int    `json:"count"`
		Stack []struct {
			PC       string `json:"pc"`
			Function string `json:"function"`
			Module   string `json:"module"`
			File     string `json:"file"`
			Line     int    `json:"line"`
		} `json:"stack"`
		Objects []struct {
			Addr uint64 `json:"addr"`
			Size uint64 `json:"size"`
		} `json:"objects"`
	} `json:"leaks"`
	Suppressed []struct {
		Pattern string `json:"pattern"`
		Count   int    `json:"count"`
		Bytes   uint64 `json:"bytes"`
	} `json:"suppressed"`
	Stats struct {
		Blocks    int     `json:"blocks"`
		Allocs    uint64  `json:"allocs_since_attach"`
		Frees     uint64  `json:"frees_since_attach"`
		PausedMS  float64 `json:"paused_ms"`
		Snapshot  string  `json:"snapshot"`
		Snapshots int     `json:"snapshots"`
		// UnwindTableBytes: kernel memory of the CFI rows loaded.
		UnwindTableBytes uint64 `json:"unwind_table_bytes"`
		// StacksCut, StacksLate: stacks ended with a marker, and walked
		// again by lsan after a dlopen or execve (docs/unwind.md).
		StacksCut  uint64 `json:"stacks_cut"`
		StacksLate uint64 `json:"stacks_walked_late"`
		// Unconfirmed: blocks a fork snapshot held back (first seen
		// unreferenced).
		Unconfirmed int `json:"unconfirmed_blocks"`
	} `json:"stats"`
	Dropped struct {
		Allocs     uint64 `json:"allocs"`
		Stacks     uint64 `json:"stacks"`
		Frees      uint64 `json:"frees"`
		Unreadable uint64 `json:"unreadable_bytes"`
		Unrecorded uint64 `json:"unrecorded"`
	} `json:"dropped"`
	Complete bool `json:"complete"`
}

func parseReports(t *testing.T, out string) []jsonReport {
	t.Helper()
	var reps []jsonReport
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var r jsonReport
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		reps = append(reps, r)
	}
	if len(reps) == 0 {
		t.Fatal("lsan wrote no report")
	}
	return reps
}

// callSite is the function that called the allocator: the first frame
// after the allocator's own frame (frame 0).
func callSite(stack []struct {
	PC       string `json:"pc"`
	Function string `json:"function"`
	Module   string `json:"module"`
	File     string `json:"file"`
	Line     int    `json:"line"`
}) string {
	if len(stack) < 2 {
		return "(no stack)"
	}
	for _, f := range stack[1:] {
		if f.PC != stack[0].PC {
			return f.Function
		}
	}
	return "(no caller)"
}

// groupsByFunction sums a report's groups per (kind, call site).
func groupsByFunction(r jsonReport, withKind bool) []expectGroup {
	sums := map[string]*expectGroup{}
	for _, g := range r.Leaks {
		kind := ""
		if withKind {
			kind = g.Kind
		}
		fn := callSite(g.Stack)
		k := kind + " " + fn
		if sums[k] == nil {
			sums[k] = &expectGroup{Kind: kind, Function: fn}
		}
		sums[k].Bytes += g.Bytes
		sums[k].Count += g.Count
	}
	return sortedGroups(sums)
}

func sortedGroups(m map[string]*expectGroup) []expectGroup {
	var out []expectGroup
	for _, g := range m {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func normalize(gs []expectGroup, withKind bool) []expectGroup {
	m := map[string]*expectGroup{}
	for _, g := range gs {
		if !withKind {
			g.Kind = ""
		}
		k := g.Kind + " " + g.Function
		if m[k] == nil {
			c := g
			m[k] = &c
			continue
		}
		m[k].Bytes += g.Bytes
		m[k].Count += g.Count
	}
	return sortedGroups(m)
}

func diffGroups(got, want []expectGroup) string {
	var g, w []string
	for _, x := range got {
		g = append(g, x.String())
	}
	for _, x := range want {
		w = append(w, x.String())
	}
	if strings.Join(g, "\n") == strings.Join(w, "\n") {
		return ""
	}
	return fmt.Sprintf("got:\n  %s\nwant:\n  %s", strings.Join(g, "\n  "), strings.Join(w, "\n  "))
}

// inOwnGroup puts cmd, before it starts, in a process group of its own,
// and kills that whole group when the test ends, on every path: whatever
// the command forked goes with it (nginx's worker outlived a killed master).
// runToEnd runs cmd in its own process group to completion and returns
// its exit status and output.
func runToEnd(t *testing.T, cmd *exec.Cmd) (int, string, string) {
	t.Helper()
	inOwnGroup(t, cmd)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

func inOwnGroup(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	t.Cleanup(func() {
		if cmd.Process != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	})
}

// startGroup starts cmd in its own process group, killed and reaped when
// the test ends (kill first: cleanups run last-registered first, so a
// separate Wait cleanup would wait for a process not yet killed).
func startGroup(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
}

// buildTestdata compiles integration/testdata/NAME.c with gcc and flags
// into the test's temporary directory and returns the binary's path.
func buildTestdata(t *testing.T, name string, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	src := filepath.Join(repoRoot, "integration", "testdata", name+".c")
	args := append(append([]string{}, flags...), "-o", bin, src)
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}
