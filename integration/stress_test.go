package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The stress test of issue 12: examples/stress is busy and leak-free (four
// threads churning checksummed pools with malloc, calloc, realloc and free,
// one creating and joining short-lived threads). lsan attaches to it again
// and again, each time while it runs at full speed: no check may report a
// leak or lose data, the program's checksums must hold, and it must run on
// after every detach, never left stopped or traced. Then its one leak site
// is triggered after each attach: exactly those blocks must be reported.
const (
	stressAttaches     = 50
	stressLeakAttaches = 10
	// stress.c's leak site: LEAKS blocks of LEAK_SIZE bytes.
	stressLeaks, stressLeakSize = 3, 777
)

// stressSnapshot is the snapshot mode of attach i: the stress tests
// alternate, so that both give their verdicts on the same busy program.
func stressSnapshot(i int) string {
	if i%2 == 0 {
		return "fork"
	}
	return "stop"
}

func TestStressNoFalseLeaks(t *testing.T) {
	requireRoot(t)
	lsan(t)
	p := startStress(t)
	for i := 0; i < stressAttaches; i++ {
		mode := stressSnapshot(i)
		code, stdout, stderr := runLSan(t, nil, "-p", strconv.Itoa(p.pid()), "-i", "300ms", "-n", "1", "--format", "json", "--snapshot", mode)
		rep := lastJSON(t, stdout)
		if code != 0 || len(rep.Leaks) != 0 || !rep.Complete || rep.Stats.Snapshot != mode {
			t.Fatalf("attach %d: exit status %d, %d leak group(s), complete=%v, snapshot %q (want %s)\n%s\n%s", i, code, len(rep.Leaks), rep.Complete, rep.Stats.Snapshot, mode, stdout, stderr)
		}
		p.requireRunning(t, i)
	}
	p.finish(t)
}

func TestStressKnownLeak(t *testing.T) {
	requireRoot(t)
	lsan(t)
	p := startStress(t)
	for i := 0; i < stressLeakAttaches; i++ {
		mode := stressSnapshot(i)
		a := attach(t, p.pid(), "-i", "1h", "--format", "json", "--snapshot", mode)
		p.leak(t)
		code := a.stop(t)
		rep := lastJSON(t, a.stdout.String())
		got := groupsByFunction(parseReports(t, a.stdout.String())[len(parseReports(t, a.stdout.String()))-1], true)
		want := []expectGroup{{Kind: "direct", Function: "stress_leak_site", Bytes: stressLeaks * stressLeakSize, Count: stressLeaks}}
		if d := diffGroups(got, want); d != "" || code != 23 || !rep.Complete || rep.Stats.Snapshot != mode {
			t.Fatalf("attach %d: exit status %d, complete=%v, snapshot %q (want %s):\n%s\n%s", i, code, rep.Complete, rep.Stats.Snapshot, mode, d, a.stderr.String())
		}
		p.requireRunning(t, i)
	}
	p.finish(t)
}

// TestStressLeakFreeForLSan: the same program built with clang
// -fsanitize=leak has no leak at exit: what the stress test holds lsan to.
// LeakSanitizer's runtime itself crashes now and then on this program's
// thread churn (seen in CI: SEGV in __lsan::CurrentThreadContext from the
// calloc interceptor); a run it crashed in says nothing, so it is run
// again, three runs at most. A leak report fails at once.
func TestStressLeakFreeForLSan(t *testing.T) {
	requireRoot(t)
	buildLSanExamples(t)
	for run := 1; ; run++ {
		out, err := runLSanStress(t)
		crashed := strings.Contains(out, "LeakSanitizer:DEADLYSIGNAL")
		if crashed && run < 3 {
			t.Logf("LSan build, run %d: LeakSanitizer crashed; running it again:\n%s", run, out)
			continue
		}
		if err != nil || strings.Contains(out, "LeakSanitizer") {
			t.Fatalf("LSan build: %v\n%s", err, out)
		}
		return
	}
}

// runLSanStress runs the stress program built with LSan for a second and
// ends it with SIGTERM (it then verifies and frees everything).
func runLSanStress(t *testing.T) (string, error) {
	cmd := exec.Command(filepath.Join(repoRoot, "examples", "bin", "lsan", "stress"))
	cmd.Env = append(os.Environ(), "LSAN_OPTIONS=exitcode=23")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	return out.String(), err
}

// stressProc is the running stress program and what it printed.
type stressProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	beat   uint64
	lines  []string
	leaked chan struct{}
	exited chan struct{}
}

func startStress(t *testing.T) *stressProc {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot, "examples", "bin", "stress"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &stressProc{cmd: cmd, leaked: make(chan struct{}, 1), exited: make(chan struct{})}
	ready := make(chan struct{})
	go p.read(bufio.NewScanner(out), ready)
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	})
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("stress program not ready")
	}
	return p
}

func (p *stressProc) read(sc *bufio.Scanner, ready chan struct{}) {
	defer close(p.exited)
	defer p.cmd.Wait()
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		switch {
		case line == "ready":
			close(ready)
		case strings.HasPrefix(line, "beat "):
			p.beat, _ = strconv.ParseUint(strings.TrimPrefix(line, "beat "), 10, 64)
		case line == "leaked":
			p.leaked <- struct{}{}
		default:
			p.lines = append(p.lines, line)
		}
		p.mu.Unlock()
	}
}

func (p *stressProc) pid() int { return p.cmd.Process.Pid }

func (p *stressProc) beats() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.beat
}

// requireRunning checks that the program is neither stopped nor traced
// and still works, and that it has found no corruption.
func (p *stressProc) requireRunning(t *testing.T, attach int) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		t.Fatalf("after attach %d: the program is gone: %v %v", attach, err, p.output())
	}
	for _, line := range strings.Split(string(status), "\n") {
		if (strings.HasPrefix(line, "State:") && (strings.Contains(line, "stopped") || strings.Contains(line, "tracing stop"))) ||
			(strings.HasPrefix(line, "TracerPid:") && strings.TrimSpace(strings.TrimPrefix(line, "TracerPid:")) != "0") {
			t.Fatalf("after attach %d: %s", attach, line)
		}
	}
	before := p.beats()
	deadline := time.Now().Add(5 * time.Second)
	for p.beats() <= before+100 {
		if time.Now().After(deadline) {
			t.Fatalf("after attach %d: the program makes no progress (%d operations)", attach, before)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out := p.output(); strings.Contains(out, "CORRUPT") {
		t.Fatalf("after attach %d: %s", attach, out)
	}
}

// leak makes the program leak once and waits until it has.
func (p *stressProc) leak(t *testing.T) {
	t.Helper()
	syscall.Kill(p.pid(), syscall.SIGUSR1)
	select {
	case <-p.leaked:
	case <-time.After(10 * time.Second):
		t.Fatal("the program did not leak")
	}
}

// finish stops the program: it verifies every block and exits 0.
func (p *stressProc) finish(t *testing.T) {
	t.Helper()
	syscall.Kill(p.pid(), syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the program did not exit")
	}
	if out := p.output(); !strings.Contains(out, "verified ") || strings.Contains(out, "CORRUPT") || p.cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("program ended with status %d: %s", p.cmd.ProcessState.ExitCode(), out)
	}
}

func (p *stressProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// stressReport is what the stress test reads of a JSON report.
type stressReport struct {
	Leaks    []json.RawMessage `json:"leaks"`
	Complete bool              `json:"complete"`
	Stats    struct {
		Snapshot string `json:"snapshot"`
	} `json:"stats"`
}

func lastJSON(t *testing.T, stdout string) stressReport {
	t.Helper()
	lines := jsonLines(stdout)
	if len(lines) == 0 {
		t.Fatalf("no JSON report in %q", stdout)
	}
	var r stressReport
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatal(err)
	}
	return r
}
