package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runExample runs `lsan run --format json -- EXAMPLE` to its exit.
func runExample(t *testing.T, ex example, args ...string) (int, []expectGroup, string) {
	t.Helper()
	all := append(append(append([]string{"run", "--format", "json"}, ex.Run.LSanArgs...), args...), "--", ex.binary())
	cmd := exec.Command(lsan(t), all...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LSAN_EXAMPLE_DAEMON=") {
			env = append(env, kv)
		}
	}
	if ex.Run.LDPreload != "" {
		env = append(env, "LD_PRELOAD="+ex.Run.LDPreload)
	}
	for k, v := range ex.Run.Env {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
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
	reps := jsonReportsIn(t, stdout.String())
	return code, groupsByFunction(reps[len(reps)-1], true), stderr.String()
}

// jsonReportsIn parses lsan's JSON reports out of a stdout that the
// command's own lines ("ready", "done") share.
func jsonReportsIn(t *testing.T, stdout string) []jsonReport {
	t.Helper()
	var jsonLines []string
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, "{") {
			jsonLines = append(jsonLines, line)
		}
	}
	return parseReports(t, strings.Join(jsonLines, "\n"))
}

// TestRunParity: `lsan run` on every example, with either tracer, reports
// what expected.json says and, where the semantics agree, what
// LeakSanitizer reports for the same source built with clang
// -fsanitize=leak; the exit status is 23 with leaks and the command's own
// (0) without.
func TestRunParity(t *testing.T) {
	requireRoot(t)
	buildLSanExamples(t)
	for _, tracer := range []string{"inproc", "uprobe"} {
		t.Run(tracer, func(t *testing.T) { runParity(t, tracer) })
	}
}

func runParity(t *testing.T, tracer string) {
	for _, ex := range loadExamples(t) {
		if ex.Leaks == nil || ex.Name == "daemon" {
			continue
		}
		t.Run(ex.Name, func(t *testing.T) {
			code, got, stderr := runExample(t, ex, "--tracer", tracer)
			want := normalize(ex.Leaks, true)
			if ex.Name == "preattach_leak" {
				// Under lsan run nothing is allocated before the probes:
				// it sees what LSan sees.
				want = lsanAtExit(t, ex)
			}
			if d := diffGroups(got, want); d != "" {
				t.Errorf("lsan run vs expected:\n%s\n%s", d, stderr)
			}
			if ex.LSanParity {
				if d := diffGroups(got, lsanAtExit(t, ex)); d != "" {
					t.Errorf("lsan run vs LeakSanitizer:\n%s", d)
				}
			}
			wantCode := map[bool]int{true: 23, false: 0}[len(got) > 0]
			if code != wantCode {
				t.Errorf("exit status %d, want %d\n%s", code, wantCode, stderr)
			}
		})
	}
}

// TestRunStatuses: without leaks lsan run exits as the command did; a
// command that cannot run gets the shell's status.
func TestRunStatuses(t *testing.T) {
	requireRoot(t)
	notExec := t.TempDir() + "/not-executable"
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	for _, tc := range []struct {
		name string
		argv []string
		code int
		err  string
	}{
		{"own status", []string{"sh", "-c", "exit 7"}, 7, ""},
		{"killed by a signal", []string{"sh", "-c", "kill -TERM $$"}, 128 + 15, "killed by SIGTERM: no leak check possible"},
		{"not found", []string{"no-such-command-lsan"}, 127, "lsan: no-such-command-lsan: command not found"},
		{"not executable", []string{notExec}, 126, "permission denied"},
		{"execs another program", []string{"sh", "-c", "exec true"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runLSan(t, nil, append([]string{"run", "--"}, tc.argv...)...)
			if code != tc.code {
				t.Errorf("exit status %d, want %d (%s)", code, tc.code, stderr)
			}
			if tc.err != "" && !strings.Contains(stderr, tc.err) {
				t.Errorf("stderr %q lacks %q", stderr, tc.err)
			}
		})
	}
}

// TestRunExecChain: the command execs another program; the report is the
// final program's, not the shell's.
func TestRunExecChain(t *testing.T) {
	requireRoot(t)
	for _, ex := range loadExamples(t) {
		if ex.Name != "list" {
			continue
		}
		code, _, stderr := runLSan(t, nil, "run", "--", "sh", "-c", "exec env -u LSAN_EXAMPLE_DAEMON "+ex.binary()+" </dev/null")
		if code != 23 || !strings.Contains(stderr, "attached") {
			t.Errorf("exit status %d, want 23\n%s", code, stderr)
		}
		return
	}
}

// TestRunInterrupted: a command that never exits still gets its report
// when lsan run is interrupted.
func TestRunInterrupted(t *testing.T) {
	requireRoot(t)
	for _, ex := range loadExamples(t) {
		if ex.Name != "list" {
			continue
		}
		cmd := exec.Command(lsan(t), "run", "--", ex.binary())
		cmd.Env = append(os.Environ(), "LSAN_EXAMPLE_DAEMON=1")
		stdin, _ := cmd.StdinPipe()
		stdout, stderr := &syncBuffer{}, &syncBuffer{}
		cmd.Stdout, cmd.Stderr = stdout, stderr
		inOwnGroup(t, cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stdin.Write([]byte("go\n"))
		waitFor(t, "the example to be done", func() bool { return strings.Contains(stdout.String(), "done") })
		time.Sleep(200 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGINT)
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != 23 || !strings.Contains(stdout.String(), "SUMMARY: LeakSanitizer: 740 byte(s) leaked in 20 allocation(s).") {
			t.Errorf("exit status %d, want 23 and the list's leaks\n%s\n%s", code, stdout.String(), stderr.String())
		}
		return
	}
}

// TestRunFollowForks: with --follow-forks every forked child gets its own
// report, with its pid, and the same groups as LeakSanitizer's report of
// that child; without the flag only the command itself is checked.
func TestRunFollowForks(t *testing.T) {
	requireRoot(t)
	buildLSanExamples(t)
	for _, ex := range loadExamples(t) {
		if len(ex.Children) == 0 {
			continue
		}
		t.Run(ex.Name, func(t *testing.T) {
			code, reps, stderr := runFollowing(t, ex.binary())
			if code != 23 {
				t.Errorf("exit status %d, want 23\n%s", code, stderr)
			}
			want := []string{groupsString(normalize(ex.Leaks, true))}
			for _, c := range ex.Children {
				want = append(want, groupsString(normalize(c, true)))
			}
			got := reportsByProcess(t, reps, stderr)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("per-process groups (command first, then children in fork order):\n%s\nwant:\n%s\n%s",
					strings.Join(got, "\n"), strings.Join(want, "\n"), stderr)
			}
			lsanSide := lsanPerProcess(t, ex)
			gotSorted, lsanSorted := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(lsanSide))
			if !slices.Equal(gotSorted, lsanSorted) {
				t.Errorf("lsan run --follow-forks vs LeakSanitizer, per process:\n%s\nLSan:\n%s",
					strings.Join(gotSorted, "\n"), strings.Join(lsanSorted, "\n"))
			}
		})
	}
}

// TestRunFollowForksExec: children that exec other programs are followed
// into them (a shell running the example twice: 2 x 3 processes
// reported, the shell itself without leaks).
func TestRunFollowForksExec(t *testing.T) {
	requireRoot(t)
	bin := filepath.Join(repoRoot, "examples", "bin", "forks")
	code, reps, stderr := runFollowing(t, "sh", "-c", bin+"; "+bin)
	if code != 23 {
		t.Errorf("exit status %d, want 23\n%s", code, stderr)
	}
	leaky := 0
	for _, r := range reps {
		if len(r.Leaks) > 0 {
			leaky++
		}
		for _, g := range r.Leaks {
			if g.Stack[0].Function != "malloc" {
				t.Errorf("pid %d: frame 0 is %q, want malloc", r.PID, g.Stack[0].Function)
			}
		}
	}
	if len(reps) != 7 || leaky != 6 || strings.Count(stderr, "lsan: following pid") != 6 {
		t.Errorf("%d reports, %d with leaks; want 7 and 6 (the shell has none)\n%s", len(reps), leaky, stderr)
	}
}

// runFollowing runs lsan run --follow-forks --format json on argv.
func runFollowing(t *testing.T, argv ...string) (int, []jsonReport, string) {
	t.Helper()
	code, stdout, stderr := runLSan(t, nil, append([]string{"run", "--follow-forks", "--format", "json", "--"}, argv...)...)
	return code, jsonReportsIn(t, stdout), stderr
}

// reportsByProcess renders each process's report as one line: the
// command's first, then the children in the order they were followed.
func reportsByProcess(t *testing.T, reps []jsonReport, stderr string) []string {
	t.Helper()
	byPID := map[int]jsonReport{}
	for _, r := range reps {
		byPID[r.PID] = r
	}
	var pids []int
	for _, m := range regexp.MustCompile(`attached to pid (\d+)|following pid (\d+)`).FindAllStringSubmatch(stderr, -1) {
		pid, _ := strconv.Atoi(m[1] + m[2])
		pids = append(pids, pid)
	}
	if len(pids) != len(byPID) {
		t.Fatalf("%d processes followed, %d reported\n%s", len(pids), len(byPID), stderr)
	}
	var out []string
	for _, pid := range pids {
		out = append(out, groupsString(groupsByFunction(byPID[pid], true)))
	}
	return out
}

// lsanPerProcess runs the -fsanitize=leak build and renders each of its
// reports (one per process that found leaks) as one line.
func lsanPerProcess(t *testing.T, ex example) []string {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot, "examples", "bin", "lsan", ex.Name))
	cmd.Env = append(os.Environ(), "LSAN_OPTIONS=fast_unwind_on_malloc=0:exitcode=23")
	out, _ := cmd.CombinedOutput()
	var per []string
	for _, section := range strings.Split(string(out), "ERROR: LeakSanitizer: detected memory leaks")[1:] {
		per = append(per, groupsString(parseLSanReport(section)))
	}
	return per
}

func groupsString(gs []expectGroup) string {
	var parts []string
	for _, g := range gs {
		parts = append(parts, g.String())
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// TestRunLibraryConstructor: a shared library's constructor runs before
// the program's entry point; lsan run's probes are in place before it, as
// LSan's are (its runtime starts from .preinit_array).
func TestRunLibraryConstructor(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	src := filepath.Join(repoRoot, "integration", "testdata", "ctor")
	build := func(cc string, extra ...string) string {
		exe := filepath.Join(dir, "main-"+cc)
		args := append([]string{"-g", "-O0", "-o", exe, filepath.Join(src, "main.c"), "-L" + dir, "-lctor", "-Wl,-rpath," + dir}, extra...)
		if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", cc, err, out)
		}
		return exe
	}
	lib := filepath.Join(dir, "libctor.so")
	if out, err := exec.Command("gcc", "-g", "-O0", "-fno-omit-frame-pointer", "-shared", "-fPIC", "-o", lib, filepath.Join(src, "libctor.c")).CombinedOutput(); err != nil {
		t.Fatalf("build libctor.so: %v\n%s", err, out)
	}
	plain, sanitized := build("gcc"), build("clang", "-fsanitize=leak")
	code, reps, stderr := runFollowing(t, plain)
	got := groupsString(groupsByFunction(reps[len(reps)-1], true))
	want := "[direct lib_ctor_leak: 48 byte(s) in 1 object(s)]"
	if code != 23 || got != want {
		t.Errorf("exit status %d, groups %s; want 23 and %s\n%s", code, got, want, stderr)
	}
	out, _ := exec.Command(sanitized).CombinedOutput()
	if lsanGot := groupsString(parseLSanReport(string(out))); lsanGot != want {
		t.Errorf("LeakSanitizer reports %s, want %s", lsanGot, want)
	}
}

// TestRunWithoutFollowForks: without --follow-forks the children run
// untracked: one report, the command's, with the parent's leak only.
func TestRunWithoutFollowForks(t *testing.T) {
	requireRoot(t)
	code, stdout, stderr := runLSan(t, nil, "run", "--format", "json", "--", filepath.Join(repoRoot, "examples", "bin", "forks"))
	reps := jsonReportsIn(t, stdout)
	if code != 23 || len(reps) != 1 || strings.Contains(stderr, "following pid") {
		t.Fatalf("exit status %d, %d reports; want 23 and 1, no child followed\n%s", code, len(reps), stderr)
	}
	want := "[direct parent_leak: 72 byte(s) in 1 object(s)]"
	if got := groupsString(groupsByFunction(reps[0], true)); got != want {
		t.Errorf("groups %s, want %s", got, want)
	}
}

// TestRunForwardsSignals: SIGTERM, SIGHUP and SIGQUIT sent to lsan run
// reach the command. A shell that traps each one exits with a status
// that names it; SIGTERM, not trapped by the example, kills it (128+15).
func TestRunForwardsSignals(t *testing.T) {
	requireRoot(t)
	trap := `trap "exit 41" HUP; trap "exit 42" QUIT; echo ready; while :; do sleep 0.05; done`
	for _, tc := range []struct {
		sig  syscall.Signal
		argv []string
		code int
	}{
		{syscall.SIGHUP, []string{"sh", "-c", trap}, 41},
		{syscall.SIGQUIT, []string{"sh", "-c", trap}, 42},
		{syscall.SIGTERM, []string{"sh", "-c", `echo ready; while :; do sleep 0.05; done`}, 128 + 15},
	} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			cmd := exec.Command(lsan(t), append([]string{"run", "--"}, tc.argv...)...)
			inOwnGroup(t, cmd)
			stdout, stderr := &syncBuffer{}, &syncBuffer{}
			cmd.Stdout, cmd.Stderr = stdout, stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the command to be ready", func() bool { return strings.Contains(stdout.String(), "ready") })
			cmd.Process.Signal(tc.sig)
			// A signal not passed on would leave the command looping:
			// end the whole process group then, and fail.
			timer := time.AfterFunc(15*time.Second, func() {
				t.Errorf("%v not passed on: the command still runs", tc.sig)
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			})
			err := cmd.Wait()
			timer.Stop()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if code != tc.code {
				t.Errorf("exit status %d, want %d\n%s", code, tc.code, stderr.String())
			}
		})
	}
}
