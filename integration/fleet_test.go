package integration

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lsan-project/lsan/internal/testproc"
)

// attachMany starts lsan with args and waits until it has attached to
// each of pids.
func attachMany(t *testing.T, pids []int, args ...string) *attached {
	t.Helper()
	cmd := exec.Command(lsan(t), args...)
	a := &attached{cmd: cmd, stdout: &strings.Builder{}, stderr: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = a.stdout, a.stderr
	inOwnGroup(t, cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		a.waitAttached(t, pid)
	}
	return a
}

// waitAttached waits for lsan's "attached to pid PID" line.
func (a *attached) waitAttached(t *testing.T, pid int) {
	t.Helper()
	want := fmt.Sprintf("attached to pid %d", pid)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(a.stderr.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("lsan did not attach to pid %d:\n%s", pid, a.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// byPID keeps each process's last report.
func byPID(reps []jsonReport) map[int]jsonReport {
	out := map[int]jsonReport{}
	for _, r := range reps {
		out[r.PID] = r
	}
	return out
}

// TestFleetTwoPrograms: `lsan -p A,B` on two different example programs
// using glibc's malloc: one tracer, its probe sites shared; one report per
// process, each with its pid and exactly that example's leaks.
func TestFleetTwoPrograms(t *testing.T) {
	requireRoot(t)
	lsan(t)
	var exs []example
	for _, ex := range loadExamples(t) {
		if ex.Name == "malloc" || ex.Name == "list" {
			exs = append(exs, ex)
		}
	}
	var procs []*process
	var pids []string
	var ints []int
	for _, ex := range exs {
		p := startExample(t, ex)
		procs = append(procs, p)
		pids = append(pids, strconv.Itoa(p.Pid()))
		ints = append(ints, p.Pid())
	}
	a := attachMany(t, ints, "-p", strings.Join(pids, ","), "--format", "json", "-i", "1h")
	for _, p := range procs {
		p.trigger(t)
	}
	if code := a.stop(t); code != 23 {
		t.Errorf("exit status %d, want 23\n%s", code, a.stderr.String())
	}
	if want := fmt.Sprintf("attached to pid %d (sharing the probes of pid %d)", ints[1], ints[0]); !strings.Contains(a.stderr.String(), want) {
		t.Errorf("no %q:\n%s", want, a.stderr.String())
	}
	last := byPID(parseReports(t, a.stdout.String()))
	for i, ex := range exs {
		r, ok := last[procs[i].Pid()]
		if !ok {
			t.Errorf("%s (pid %d): no report", ex.Name, procs[i].Pid())
			continue
		}
		if d := diffGroups(groupsByFunction(r, true), normalize(ex.Leaks, true)); d != "" {
			t.Errorf("%s (pid %d):\n%s", ex.Name, procs[i].Pid(), d)
		}
	}
}

// TestFleetNginxComm: `--comm nginx` on a master and two workers under
// HTTP load: every process is checked, with no leak, on complete data; a
// killed worker's replacement is picked up and checked too.
func TestFleetNginxComm(t *testing.T) {
	requireRoot(t)
	master, port := startNginxWorkers(t, 2)
	var workers []int
	waitFor(t, "two nginx workers", func() bool { workers = childrenOf(master); return len(workers) == 2 })
	a := attachMany(t, append([]int{master}, workers...), "--comm", "nginx", "--format", "json", "-i", "1s")
	httpLoad(t, port, 3000, 3*time.Second)
	syscall.Kill(workers[0], syscall.SIGKILL)
	var fresh int
	waitFor(t, "a new worker", func() bool {
		for _, w := range childrenOf(master) {
			if w != workers[1] && w != workers[0] {
				fresh = w
			}
		}
		return fresh != 0
	})
	a.waitAttached(t, fresh)
	httpLoad(t, port, 3000, 3*time.Second)
	time.Sleep(1500 * time.Millisecond) // a check of the new worker
	code := a.stop(t)
	reps := parseReports(t, a.stdout.String())
	last := byPID(reps)
	for _, pid := range []int{master, workers[1], fresh} {
		r, ok := last[pid]
		if !ok {
			t.Errorf("pid %d: no report\n%s", pid, a.stderr.String())
			continue
		}
		if len(r.Leaks) != 0 || !r.Complete {
			t.Errorf("pid %d: %d leak groups, complete %v", pid, len(r.Leaks), r.Complete)
		}
	}
	if !strings.Contains(a.stderr.String(), fmt.Sprintf("pid %d exited", workers[0])) {
		t.Errorf("the killed worker's exit was not said:\n%s", a.stderr.String())
	}
	if code != 0 {
		t.Errorf("exit status %d\n%s", code, a.stderr.String())
	}
}

// TestFleetRespawnedWorkerLeak: a master respawns its worker; under
// --comm the new worker is traced from its start (adopted into the
// master's tracer: same program), and its leak is reported with its pid,
// exact bytes and objects; the master's report has none.
func TestFleetRespawnedWorkerLeak(t *testing.T) {
	requireRoot(t)
	bin := buildTestdata(t, "respawn", "-O0", "-g", "-fno-omit-frame-pointer")
	p := testproc.Start(t, exec.Command(bin))
	first := readWorker(t, p.Out)
	a := attachMany(t, []int{p.Pid(), first}, "--comm", "respawn", "--format", "json", "-i", "1h")
	syscall.Kill(first, syscall.SIGKILL)
	second := readWorker(t, p.Out)
	a.waitAttached(t, second)
	io.WriteString(p.Stdin, "leak\n")
	if line, _ := p.Out.ReadString('\n'); strings.TrimSpace(line) != "leaked" {
		t.Fatalf("worker answered %q", line)
	}
	if code := a.stop(t); code != 23 {
		t.Errorf("exit status %d, want 23\n%s", code, a.stderr.String())
	}
	last := byPID(parseReports(t, a.stdout.String()))
	want := []expectGroup{{Kind: "direct", Function: "worker_leak", Bytes: 2100, Count: 3}}
	if d := diffGroups(groupsByFunction(last[second], true), want); d != "" {
		t.Errorf("respawned worker %d:\n%s\n%s", second, d, a.stderr.String())
	}
	if r, ok := last[p.Pid()]; !ok || len(r.Leaks) != 0 {
		t.Errorf("master: report %v, leaks %d", ok, len(r.Leaks))
	}
	if !strings.Contains(a.stderr.String(), fmt.Sprintf("attached to pid %d (sharing the probes of pid %d)", second, p.Pid())) {
		t.Errorf("the new worker does not share the master's probes:\n%s", a.stderr.String())
	}
}

func readWorker(t *testing.T, out *bufio.Reader) int {
	t.Helper()
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscanf(line, "worker %d", &pid); err != nil {
		t.Fatalf("bad line %q", line)
	}
	return pid
}

// childrenOf lists pid's child processes.
func childrenOf(pid int) []int {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(data)) {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}

// TestFleetUsage: -p takes a list of positive pids; --comm a kernel
// command name.
func TestFleetUsage(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-p", "1,abc"}, `lsan: -p 1,abc: "abc" is not a process ID`},
		{[]string{"--comm", "a-name-longer-than-15"}, "lsan: --comm \"a-name-longer-than-15\": a command name is 1 to 15 characters"},
	} {
		code, _, stderr := runToEnd(t, exec.Command(lsan(t), tc.args...))
		if code != 2 || !strings.Contains(stderr, tc.msg) {
			t.Errorf("lsan %v: status %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.msg)
		}
	}
}
