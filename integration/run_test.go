package integration

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runExample runs `lsan run --format json -- EXAMPLE` to its exit.
func runExample(t *testing.T, ex example, args ...string) (int, []expectGroup, string) {
	t.Helper()
	all := append(append([]string{"run", "--format", "json"}, args...), "--", ex.binary())
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
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	// The example's own "ready"/"done" lines share stdout with the report.
	var jsonLines []string
	for _, line := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(line, "{") {
			jsonLines = append(jsonLines, line)
		}
	}
	reps := parseReports(t, strings.Join(jsonLines, "\n"))
	return code, groupsByFunction(reps[len(reps)-1], true), stderr.String()
}

// TestRunParity: `lsan run` on every example reports what expected.json
// says and, where the semantics agree, what LeakSanitizer reports for the
// same source built with clang -fsanitize=leak; the exit status is 23 with
// leaks and the command's own (0) without.
func TestRunParity(t *testing.T) {
	requireRoot(t)
	buildLSanExamples(t)
	for _, ex := range loadExamples(t) {
		if ex.Leaks == nil || ex.Name == "daemon" {
			continue
		}
		t.Run(ex.Name, func(t *testing.T) {
			code, got, stderr := runExample(t, ex)
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
