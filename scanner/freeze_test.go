package scanner

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A target traced by another process (here: a helper doing PTRACE_SEIZE,
// as gdb or strace would) gives a clear error naming the tracer.
func TestCheckAlreadyTraced(t *testing.T) {
	tg := startTarget(t, program(t, "leaks"), nil)
	helper, out, stop := startHelper(t, "seize", tg.pid)
	if line := readLineTimeout(t, out, 10*time.Second); strings.TrimSpace(line) != "seized" {
		t.Fatalf("helper: %q", line)
	}
	_, err := Check(tg.pid, func() ([]Block, error) { return nil, nil }, Options{})
	var te *TracedError
	if !errors.As(err, &te) || !errors.Is(err, ErrAlreadyTraced) {
		t.Fatalf("Check = %v, want a TracedError", err)
	}
	if te.TracerPID != helper.Process.Pid {
		t.Errorf("TracerPID = %d, want the helper %d", te.TracerPID, helper.Process.Pid)
	}
	want := fmt.Sprintf("pid %d is already traced by pid %d (TracerPid in /proc/%d/status)", tg.pid, helper.Process.Pid, tg.pid)
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	stop()
	// Once the tracer is gone the target can be checked, and the threads
	// this check stopped before failing were resumed.
	tg.assertRunning()
	checkLabels(t, tg, Options{Allocator: Glibc})
}

// The same with a real strace.
func TestCheckUnderStrace(t *testing.T) {
	path, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed")
	}
	tg := startTarget(t, program(t, "leaks"), nil)
	st := exec.Command(path, "-p", strconv.Itoa(tg.pid), "-o", "/dev/null")
	if err := st.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		st.Process.Signal(unix.SIGTERM)
		st.Wait()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := readTaskStatus(tg.pid, 0)
		if err == nil && s.TracerPID == st.Process.Pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("strace did not attach")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, err = Check(tg.pid, func() ([]Block, error) { return nil, nil }, Options{})
	var te *TracedError
	if !errors.As(err, &te) || te.TracerPID != st.Process.Pid {
		t.Fatalf("Check = %v, want a TracedError naming strace (pid %d)", err, st.Process.Pid)
	}
	t.Logf("error: %v", err)
}

// When the checker dies (SIGKILL) while it holds the target frozen, the
// kernel detaches the target, which goes on running.
func TestCheckerKilledWhileFrozen(t *testing.T) {
	tg := startTarget(t, program(t, "counter"), nil)
	helper, out, _ := startHelper(t, "checkloop", tg.pid)
	for i := 0; i < 2; i++ { // let one check complete, then kill in the second
		if line := readLineTimeout(t, out, 10*time.Second); strings.TrimSpace(line) != "frozen" {
			t.Fatalf("helper: %q", line)
		}
	}
	// The target is frozen now: its threads are in a tracing stop.
	if st, err := readTaskStatus(tg.pid, 0); err != nil || st.State != 't' {
		t.Fatalf("target state before the kill: %c (%v), want t", st.State, err)
	}
	before := lastCounter(t, tg)
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	helper.Wait()
	// The counter moves again.
	time.Sleep(100 * time.Millisecond)
	after := lastCounter(t, tg)
	if after <= before {
		t.Fatalf("counter stuck at %d after the checker died", after)
	}
	tg.assertRunning()
}

// lastCounter drains what the counter target printed and returns the last
// value, waiting for at least one new line.
func lastCounter(t *testing.T, tg *target) int {
	t.Helper()
	last := -1
	line := readLineTimeout(t, tg.out, 5*time.Second)
	for {
		if n, err := strconv.Atoi(strings.TrimSpace(line)); err == nil {
			last = n
		}
		if tg.out.Buffered() == 0 {
			return last
		}
		line = readLineTimeout(t, tg.out, time.Second)
	}
}

// Threads are created and joined all the time while the checks run.
func TestCheckThreadChurn(t *testing.T) {
	tg := startTarget(t, program(t, "churn"), nil)
	// A spawner seized but not yet interrupted goes on creating threads:
	// widening that window makes new threads appear after the listing.
	testHookAfterSeize = func(int) { time.Sleep(200 * time.Microsecond) }
	defer func() { testHookAfterSeize = nil }()
	var rounds, maxThreads int
	for i := 0; i < 50; i++ {
		res := checkLabels(t, tg, Options{Allocator: Glibc})
		rounds = max(rounds, res.Stats.FreezeRounds)
		maxThreads = max(maxThreads, res.Stats.Threads)
		time.Sleep(time.Millisecond)
	}
	t.Logf("most listing rounds %d, most threads %d", rounds, maxThreads)
	if rounds < 2 {
		t.Errorf("no thread appeared during a freeze: the relisting was not exercised")
	}
}

func TestCheckThousandsOfThreads(t *testing.T) {
	const n = 2000
	tg := startTarget(t, program(t, "threads"), nil, strconv.Itoa(n))
	start := time.Now()
	res := checkLabels(t, tg, Options{Allocator: Glibc})
	if res.Stats.Threads != n+1 {
		t.Errorf("Threads = %d, want %d", res.Stats.Threads, n+1)
	}
	t.Logf("%d threads: freeze %v, paused %v, total %v (wall %v)", res.Stats.Threads,
		res.Stats.Freeze, res.Stats.Paused, res.Stats.Total, time.Since(start))
	if res.Stats.Paused > 5*time.Second {
		t.Errorf("paused %v for %d threads", res.Stats.Paused, n)
	}
}

// Signals that arrive during a freeze are delivered afterwards, none lost:
// a signal met as a signal-delivery-stop is handed back at detach.
func TestCheckKeepsSignals(t *testing.T) {
	tg := startTarget(t, program(t, "signals"), nil)
	const sig = unix.Signal(40)
	var sent atomic.Int64
	stopSending := make(chan struct{})
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		for {
			select {
			case <-stopSending:
				return
			default:
			}
			if err := unix.Tgkill(tg.pid, tg.pid, sig); err == nil {
				sent.Add(1)
			}
			time.Sleep(20 * time.Microsecond)
		}
	}()
	// Widen the window between seize and interrupt so that signals get
	// reported as signal-delivery-stops.
	testHookAfterSeize = func(int) { time.Sleep(2 * time.Millisecond) }
	defer func() { testHookAfterSeize = nil }()
	held := 0
	for i := 0; i < 100; i++ {
		res, err := Check(tg.pid, func() ([]Block, error) { return nil, nil }, Options{})
		if err != nil {
			t.Fatal(err)
		}
		held += res.Stats.SignalsHeld
	}
	close(stopSending)
	<-senderDone
	testHookAfterSeize = nil
	time.Sleep(100 * time.Millisecond) // let the last signals be handled
	tg.stdin.Close()
	line := readLineTimeout(t, tg.out, 10*time.Second)
	var got int64
	if _, err := fmt.Sscanf(line, "received %d", &got); err != nil {
		t.Fatalf("target said %q", line)
	}
	t.Logf("sent %d, received %d, %d held at a signal-delivery-stop and re-delivered", sent.Load(), got, held)
	if got != sent.Load() {
		t.Errorf("target received %d signals, %d were sent", got, sent.Load())
	}
	if held == 0 {
		t.Errorf("no signal-delivery-stop was met: the test did not exercise re-delivery")
	}
}

// A stopped process (SIGSTOP) can be checked and stays stopped; a SIGSTOP
// that arrives during the check stops it afterwards.
func TestCheckGroupStop(t *testing.T) {
	tg := startTarget(t, program(t, "leaks"), nil)
	waitState := func(want byte) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			st, err := readTaskStatus(tg.pid, 0)
			if err == nil && st.State == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("state %c, want %c", st.State, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := unix.Kill(tg.pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitState('T')
	res := checkLabelsNoRunCheck(t, tg, Options{Allocator: Glibc})
	if res.Stats.Threads != 6 {
		t.Errorf("Threads = %d, want 6", res.Stats.Threads)
	}
	waitState('T') // still stopped: the check must not resume a stopped process
	unix.Kill(tg.pid, unix.SIGCONT)
	tg.assertRunning()

	// SIGSTOP sent while the target is frozen takes effect after detach.
	_, err := Check(tg.pid, func() ([]Block, error) {
		return nil, unix.Kill(tg.pid, unix.SIGSTOP)
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	waitState('T')
	unix.Kill(tg.pid, unix.SIGCONT)
	tg.assertRunning()
	checkLabels(t, tg, Options{Allocator: Glibc})
}

// checkLabelsNoRunCheck is checkLabels without the "target running"
// assertion (for a target that was stopped before the check).
func checkLabelsNoRunCheck(t *testing.T, tg *target, opts Options) *Result {
	t.Helper()
	tracked := tg.tracked()
	res, err := Check(tg.pid, func() ([]Block, error) { return plainBlocks(tracked), nil }, opts)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	for i, b := range tracked {
		if want := expectedClass(t, b, opts.ExactBounds); res.Classes[i] != want {
			t.Errorf("%s:%s: got %v, want %v", b.class, b.name, res.Classes[i], want)
		}
	}
	return res
}

// The target is this process's child and another goroutine waits for it
// (as `lsan run` might): the kernel hands the tracees' stop reports to
// that wait too. The freeze must still complete and resume the target.
func TestCheckWhileParentWaits(t *testing.T) {
	tg := startTarget(t, program(t, "leaks"), nil)
	waited := make(chan string, 1)
	go func() {
		var st unix.WaitStatus
		_, err := unix.Wait4(tg.pid, &st, 0, nil) // options 0: exits only, one would think
		waited <- fmt.Sprintf("status %#x (stopped=%v exited=%v), err %v", uint32(st), st.Stopped(), st.Exited(), err)
	}()
	time.Sleep(20 * time.Millisecond)
	checkLabels(t, tg, Options{Allocator: Glibc})
	select {
	case s := <-waited:
		t.Logf("the parent's wait returned during the check: %s", s)
	case <-time.After(100 * time.Millisecond):
		t.Logf("the parent's wait did not return")
	}
	tg.assertRunning()
}

// The kind of a stop is told without its wait report.
func TestPendingDeliverySignal(t *testing.T) {
	tg := startTarget(t, program(t, "leaks"), nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := unix.PtraceSeize(tg.pid); err != nil {
			t.Error(err)
			return
		}
		defer ptraceDetach(tg.pid, 0)
		unix.PtraceInterrupt(tg.pid)
		var st unix.WaitStatus
		if _, err := unix.Wait4(tg.pid, &st, unix.WALL, nil); err != nil {
			t.Error(err)
			return
		}
		if sig := pendingDeliverySignal(tg.pid); sig != 0 {
			t.Errorf("interrupt stop taken for a delivery of signal %d", sig)
		}
		// Resume it, then send SIGWINCH (ignored by default, but a tracee
		// stops for it): a signal-delivery-stop.
		if err := unix.PtraceCont(tg.pid, 0); err != nil {
			t.Error(err)
			return
		}
		unix.Tgkill(tg.pid, tg.pid, unix.SIGWINCH)
		if _, err := unix.Wait4(tg.pid, &st, unix.WALL, nil); err != nil {
			t.Error(err)
			return
		}
		if sig := pendingDeliverySignal(tg.pid); sig != int(unix.SIGWINCH) {
			t.Errorf("signal-delivery-stop of SIGWINCH read as signal %d (wait status %#x)", sig, uint32(st))
		}
	}()
	<-done
	tg.assertRunning()
}

// Without the privilege to ptrace the target, the error says what is
// missing. The test binary runs as nobody against a root-owned target.
func TestCheckWithoutPrivilege(t *testing.T) {
	tg := startTarget(t, program(t, "leaks"), nil)
	dir, err := os.MkdirTemp("", "lsan-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "scanner.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	cmd := exec.Command(bin, strconv.Itoa(tg.pid))
	cmd.Env = append(os.Environ(), helperEnv+"=checkonce")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	if !strings.Contains(string(out), "permission=true") || !strings.Contains(string(out), "CAP_SYS_PTRACE") {
		t.Errorf("the error does not say that ptrace was denied and what is needed:\n%s", out)
	}
	tg.assertRunning()
}

// A thread that cannot stop (here: a parent waiting in vfork for its
// child, which a ptrace interrupt does not end) makes the freeze fail
// after FreezeTimeout with the thread named; the target runs on once it
// can. The interrupted thread is never reported stopped, so it cannot be
// detached: the checking thread's exit detaches it.
func TestCheckFreezeTimeout(t *testing.T) {
	tg := startTarget(t, program(t, "vfork"), nil, "1800")
	start := time.Now()
	_, err := Check(tg.pid, func() ([]Block, error) { return nil, nil }, Options{FreezeTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "did not stop within 300ms") {
		t.Fatalf("Check = %v, want a freeze timeout", err)
	}
	t.Logf("after %v: %v", time.Since(start), err)
	// A check meanwhile adopts the thread still seized: the same timeout,
	// not "already traced" by ourselves.
	_, err = Check(tg.pid, func() ([]Block, error) { return nil, nil }, Options{FreezeTimeout: 200 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "did not stop within 200ms") {
		t.Fatalf("second Check = %v, want a freeze timeout", err)
	}
	// Once the child exits, the parent counts again.
	before := lastCounterOrMinus(t, tg)
	time.Sleep(1700 * time.Millisecond)
	st, _ := readTaskStatus(tg.pid, 0)
	wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", tg.pid))
	t.Logf("state %c tracer %d wchan %s", st.State, st.TracerPID, wchan)
	after := lastCounter(t, tg)
	if after <= before {
		t.Fatalf("counter at %d, was %d: the target did not resume", after, before)
	}
	tg.assertRunning()
}

// lastCounterOrMinus is lastCounter for a target that may not have
// printed anything yet: -1 then.
func lastCounterOrMinus(t *testing.T, tg *target) int {
	if tg.out.Buffered() == 0 {
		return -1
	}
	return lastCounter(t, tg)
}
