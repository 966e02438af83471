package integration

import (
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lsan-project/lsan/internal/testproc"
)

// startForkTarget builds and starts integration/testdata/forktarget.c: a
// busy program that counts the SIGCHLDs it gets and the children it reaps.
func startForkTarget(t *testing.T) *testproc.Proc {
	t.Helper()
	bin := buildTestdata(t, "forktarget", "-O1", "-g", "-pthread")
	p := testproc.Start(t, exec.Command(bin))
	p.Expect(t, "ready")
	return p
}

// pingTarget asks the target for its counters; it must answer.
func pingTarget(t *testing.T, p *testproc.Proc) string {
	t.Helper()
	io.WriteString(p.Stdin, "ping\n")
	line, err := p.Out.ReadString('\n')
	if err != nil {
		p.Cmd.Wait()
		t.Fatalf("the target did not answer: %v (%v)", err, p.Cmd.ProcessState)
	}
	return strings.TrimSpace(line)
}

// TestForkSnapshotUnseen: ten checks of forks of a busy target that counts
// SIGCHLDs and reaps children with waitpid(-1, WNOHANG): it sees neither
// a signal nor a child; its leak, made before the first check, is held
// back by that one (3 blocks unconfirmed) and reported exactly by every
// later one, each confirmed by the check before (the last takes no second
// copy); no copy, zombie or tracer is left.
func TestForkSnapshotUnseen(t *testing.T) {
	requireRoot(t)
	p := startForkTarget(t)
	a := attach(t, p.Pid(), "--snapshot", "fork", "--format", "json", "-i", "300ms", "-n", "10")
	io.WriteString(p.Stdin, "leak\n")
	p.Expect(t, "leaked")
	code := a.wait(t)
	if code != 23 {
		t.Errorf("lsan exit status %d, want 23 (leaks)\n%s", code, a.stderr.String())
	}
	reps := parseReports(t, a.stdout.String())
	if len(reps) != 10 {
		t.Fatalf("%d reports, want 10\n%s", len(reps), a.stderr.String())
	}
	for i, r := range reps {
		got := groupsByFunction(r, true)
		want := []expectGroup{{Kind: "direct", Function: "leak_thousand", Bytes: 3000, Count: 3}}
		wantHeld := 0
		if i == 0 {
			want, wantHeld = nil, 3
		}
		if d := diffGroups(got, want); d != "" || r.Stats.Snapshot != "fork" || r.Stats.Snapshots != 1 || r.Stats.Unconfirmed != wantHeld || !r.Complete {
			t.Errorf("check %d (snapshot %q x%d, %d unconfirmed, complete %v), want one fork and %d unconfirmed:\n%s", i, r.Stats.Snapshot, r.Stats.Snapshots, r.Stats.Unconfirmed, r.Complete, wantHeld, d)
		}
	}
	if got := pingTarget(t, p); got != "pong sigchld=0 reaped=0" {
		t.Errorf("the target saw its copies: %q", got)
	}
	assertNothingLeftOf(t, p.Pid())
}

// TestForkSnapshotSIGKILL kills lsan with SIGKILL at random moments of
// fork-mode checks, 50 times: the target keeps running and serving,
// untraced and unstopped, and never sees a signal or a child. The one trace
// an ill-timed kill can leave — the intermediate process, when lsan dies in
// the milliseconds it lives: a zombie the target cannot see, or stopped
// at its birth — is cleaned up by the next check.
func TestForkSnapshotSIGKILL(t *testing.T) {
	requireRoot(t)
	p := startForkTarget(t)
	rng := rand.New(rand.NewSource(1))
	left := 0
	for i := 0; i < 50; i++ {
		a := attach(t, p.Pid(), "--snapshot", "fork", "--format", "json", "-i", "20ms")
		time.Sleep(time.Duration(rng.Intn(300)) * time.Millisecond)
		a.cmd.Process.Signal(syscall.SIGKILL)
		a.cmd.Wait()
		if got := pingTarget(t, p); got != "pong sigchld=0 reaped=0" {
			t.Fatalf("kill %d: the target answered %q", i, got)
		}
		problems, z := leftovers(p.Pid())
		if len(problems) > 0 || z > 0 {
			// Only an intermediate caught in the moment it lives: the
			// next check must clean it up.
			left++
			b := attach(t, p.Pid(), "--snapshot", "fork", "--format", "json", "-i", "20ms", "-n", "1")
			b.wait(t)
		}
		assertNothingLeftOf(t, p.Pid())
	}
	t.Logf("50 kills left an intermediate process %d time(s), each cleaned up by the next check", left)
}

// assertNothingLeftOf checks that pid runs untraced and that no process
// is its child or a copy of it (same executable), zombies included.
func assertNothingLeftOf(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		problems, zombies := leftovers(pid)
		if zombies > 0 {
			problems = append(problems, fmt.Sprintf("%d zombie child(ren) of the target", zombies))
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: %s", strings.Join(problems, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leftovers lists what lsan must not leave: a traced or stopped target,
// a child of the target or a process running its program; zombie
// children of the target are counted apart.
func leftovers(pid int) (problems []string, zombies int) {
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok && strings.TrimSpace(v) != "0" {
			problems = append(problems, "target traced by "+strings.TrimSpace(v))
		}
		if v, ok := strings.CutPrefix(line, "State:"); ok && strings.ContainsAny(strings.TrimSpace(v)[:1], "tT") {
			problems = append(problems, "target "+strings.TrimSpace(v))
		}
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		other, err := strconv.Atoi(e.Name())
		if err != nil || other == pid {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", other))
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			if fields[0] == "Z" {
				zombies++
			} else {
				problems = append(problems, fmt.Sprintf("pid %d (state %s) is a child of the target", other, fields[0]))
			}
		}
		if oexe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", other)); exe != "" && oexe == exe {
			problems = append(problems, fmt.Sprintf("pid %d runs the target's program", other))
		}
	}
	return problems, zombies
}

// TestForkCopyLimit: a target that rewrites its 512 MiB heap page by page
// without pause makes every fork snapshot copy its memory as the copy is
// scanned. With --fork-copy-limit 16 each check's scan of the copy stops
// once the copy has grown by 16 MiB and the check is done again with the
// target stopped, said once on stderr; with a bound far above what it can
// rewrite, the checks scan copies. The target is left running, with no
// copy behind.
func TestForkCopyLimit(t *testing.T) {
	requireRoot(t)
	bin := buildTestdata(t, "rewriter", "-O2", "-pthread")
	p := testproc.Start(t, exec.Command(bin, "512"))
	p.Expect(t, "ready")
	for _, c := range []struct {
		limit, want string
	}{{"16", "stop"}, {"1000000", "fork"}} {
		a := attach(t, p.Pid(), "--snapshot", "fork", "--fork-copy-limit", c.limit, "--format", "json", "-i", "300ms", "-n", "3")
		if code := a.wait(t); code != 0 {
			t.Fatalf("--fork-copy-limit %s: lsan exit status %d\n%s", c.limit, code, a.stderr.String())
		}
		reps := parseReports(t, a.stdout.String())
		if len(reps) != 3 {
			t.Fatalf("--fork-copy-limit %s: %d reports, want 3\n%s", c.limit, len(reps), a.stderr.String())
		}
		for i, r := range reps {
			if r.Stats.Snapshot != c.want || len(r.Leaks) != 0 || !r.Complete {
				t.Errorf("--fork-copy-limit %s, check %d: snapshot %q, %d leak groups, complete %v; want %s, none, complete",
					c.limit, i, r.Stats.Snapshot, len(r.Leaks), r.Complete, c.want)
			}
		}
		said := strings.Count(a.stderr.String(), "rewrote more than 16 MiB of its memory while its copy was scanned")
		if wantSaid := map[string]int{"stop": 1, "fork": 0}[c.want]; said != wantSaid {
			t.Errorf("--fork-copy-limit %s: the fallback said %d times, want %d\n%s", c.limit, said, wantSaid, a.stderr.String())
		}
		assertNothingLeftOf(t, p.Pid())
	}
}
