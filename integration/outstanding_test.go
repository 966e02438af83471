package integration

import (
	"strings"
	"syscall"
	"testing"
)

// TestOutstandingExamples attaches `lsan -p --mode outstanding` to every
// example before it allocates and checks the exact bytes and objects it
// reports per allocating function.
func TestOutstandingExamples(t *testing.T) {
	requireRoot(t)
	for _, ex := range loadExamples(t) {
		if ex.Outstanding == nil {
			continue
		}
		t.Run(ex.Name, func(t *testing.T) {
			got := outstandingGroups(t, ex)
			if d := diffGroups(got, normalize(ex.Outstanding, false)); d != "" {
				t.Errorf("%s: outstanding blocks differ\n%s", ex.Name, d)
			}
		})
	}
}

// TestProbePlacementOff runs the corpus with every probe at its function
// entry: placement must not change a single result.
func TestProbePlacementOff(t *testing.T) {
	requireRoot(t)
	for _, ex := range loadExamples(t) {
		t.Run(ex.Name, func(t *testing.T) {
			got := outstandingGroups(t, ex, "--probe-placement", "entry")
			if d := diffGroups(got, normalize(ex.Outstanding, false)); d != "" {
				t.Errorf("with --probe-placement=entry:\n%s", d)
			}
		})
	}
}

// TestSampling tracks 1 in 10 allocations of the malloc example: the
// allocations are numbered from attach, and every tenth is kept (#0 in
// keep_small, #10..#100 in the freed churn, #110 a kept block of free_half).
func TestSampling(t *testing.T) {
	requireRoot(t)
	for _, ex := range loadExamples(t) {
		if ex.Name != "malloc" {
			continue
		}
		got := outstandingGroups(t, ex, "--sample-rate", "10")
		want := []expectGroup{{Function: "free_half", Bytes: 256, Count: 1}, {Function: "keep_small", Bytes: 32, Count: 1}}
		if d := diffGroups(got, normalize(want, false)); d != "" {
			t.Errorf("sampled 1 in 10:\n%s", d)
		}
		return
	}
	t.Fatal("no malloc example")
}

// outstandingGroups runs one outstanding report on an example.
func outstandingGroups(t *testing.T, ex example, extra ...string) []expectGroup {
	t.Helper()
	p := startExample(t, ex)
	args := append(append([]string{"--mode", "outstanding", "--format", "json", "--top", "0", "-i", "1h"}, ex.Run.LSanArgs...), extra...)
	a := attach(t, p.Pid(), args...)
	p.trigger(t)
	if code := a.stop(t); code != 0 {
		t.Fatalf("lsan exit status %d\n%s", code, a.stderr.String())
	}
	reps := parseReports(t, a.stdout.String())
	last := reps[len(reps)-1]
	if last.Dropped.Allocs != 0 || last.Dropped.Stacks != 0 {
		t.Errorf("dropped: %+v", last.Dropped)
	}
	return groupsByFunction(last, false)
}

// TestOutstandingTargetExit: when the target exits, `lsan -p --mode
// outstanding` ends on its own with a final report of what the target
// still had allocated, symbolized from the mappings it had.
func TestOutstandingTargetExit(t *testing.T) {
	requireRoot(t)
	for _, ex := range loadExamples(t) {
		if ex.Name != "malloc" {
			continue
		}
		p := startExample(t, ex)
		a := attach(t, p.Pid(), "--mode", "outstanding", "--format", "json", "--top", "0", "-i", "1h")
		p.trigger(t)
		p.Cmd.Process.Signal(syscall.SIGTERM) // the example exits on SIGTERM
		err := a.cmd.Wait()
		if err != nil {
			t.Fatalf("lsan: %v\n%s", err, a.stderr.String())
		}
		reps := parseReports(t, a.stdout.String())
		last := reps[len(reps)-1]
		if d := diffGroups(groupsByFunction(last, false), normalize(ex.Outstanding, false)); d != "" {
			t.Errorf("final report after exit:\n%s", d)
		}
		if !strings.Contains(a.stderr.String(), "exited") {
			t.Errorf("stderr does not say the target exited: %s", a.stderr.String())
		}
		return
	}
	t.Fatal("no malloc example")
}
