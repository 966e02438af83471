package integration

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// otherThread is a thread of the test process that is not its main thread.
func otherThread(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != fmt.Sprint(os.Getpid()) {
			var tid int
			fmt.Sscan(e.Name(), &tid)
			return tid
		}
	}
	t.Fatal("the test process has one thread")
	return 0
}

// TestCLITargetValidation: a PID that names something lsan cannot check
// gets one line saying what it is, before any probe is placed.
func TestCLITargetValidation(t *testing.T) {
	requireRoot(t)
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	// Not waited for until the end: until then it is a zombie.
	defer zombie.Wait()
	waitFor(t, "zombie", func() bool {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", zombie.Process.Pid))
		return strings.Contains(string(data), ") Z ")
	})

	traced := exec.Command("sleep", "60")
	startGroup(t, traced)
	tracer := exec.Command("strace", "-q", "-o", "/dev/null", "-p", fmt.Sprint(traced.Process.Pid))
	startGroup(t, tracer)
	waitFor(t, "strace to attach", func() bool {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", traced.Process.Pid))
		return !strings.Contains(string(data), "TracerPid:\t0\n")
	})

	tid := otherThread(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"pid 0", []string{"-p", "0"}, 2, "lsan: -p 0: a process ID is a positive number"},
		{"pid -1", []string{"-p", "-1"}, 2, "lsan: -p -1: a process ID is a positive number"},
		{"kernel thread", []string{"-p", "2"}, 1, "lsan: pid 2 is a kernel thread"},
		{"zombie", []string{"-p", fmt.Sprint(zombie.Process.Pid)}, 1, fmt.Sprintf("lsan: pid %d has exited (zombie)", zombie.Process.Pid)},
		{"thread", []string{"-p", fmt.Sprint(tid)}, 1, fmt.Sprintf("lsan: pid %d is a thread of process %d; use -p %d", tid, os.Getpid(), os.Getpid())},
		{"nonexistent", []string{"-p", "1073741800"}, 1, "lsan: no process with pid 1073741800"},
		{"already traced", []string{"-p", fmt.Sprint(traced.Process.Pid)}, 1,
			fmt.Sprintf("lsan: pid %d is already traced by process %d (strace)", traced.Process.Pid, tracer.Process.Pid)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, _, stderr := runLSan(t, nil, append(tc.args, "-n", "1")...)
			assertOneLine(t, code, stderr, tc.code, tc.want)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v: the check must come before attach", d)
			}
		})
	}
	t.Run("itself", func(t *testing.T) {
		cmd := exec.Command("sh", "-c", `exec "$0" -p $$ -n 1`, lsan(t))
		inOwnGroup(t, cmd)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		assertOneLine(t, code, stderr.String(), 1, "lsan: lsan cannot check itself")
	})
}

// assertOneLine: stderr is exactly one line starting with want, and the
// exit status is code.
func assertOneLine(t *testing.T, code int, stderr string, wantCode int, want string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("exit status %d, want %d (stderr %q)", code, wantCode, stderr)
	}
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], want) {
		t.Errorf("stderr %q, want one line starting with %q", stderr, want)
	}
}

// TestCLIPrivileges runs lsan as an unprivileged user holding CAP_BPF,
// CAP_PERFMON and CAP_SYS_PTRACE as ambient capabilities, minus one at a
// time: each run names exactly what it lacks.
func TestCLIPrivileges(t *testing.T) {
	requireRoot(t)
	setpriv := requireCommand(t, "setpriv")
	target := exec.Command("sleep", "60") // a root process
	startGroup(t, target)
	pid := fmt.Sprint(target.Process.Pid)
	all := []string{"bpf", "perfmon", "sys_ptrace"}
	wants := map[string]string{"bpf": "lsan: missing CAP_BPF", "perfmon": "lsan: missing CAP_PERFMON", "sys_ptrace": "lsan: missing CAP_SYS_PTRACE"}
	bin := lsan(t)
	os.Chmod(bin, 0o755)
	for _, drop := range all {
		t.Run("without "+drop, func(t *testing.T) {
			var keep []string
			for _, c := range all {
				if c != drop {
					keep = append(keep, "+"+c)
				}
			}
			caps := strings.Join(keep, ",")
			code, _, stderr := runCommand(t, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
				"--inh-caps="+caps, "--ambient-caps="+caps, "--", bin, "-p", pid, "-n", "1")
			assertOneLine(t, code, stderr, 1, wants[drop])
			if !strings.Contains(stderr, "run as root") {
				t.Errorf("stderr %q does not say how to fix it", stderr)
			}
		})
	}
	t.Run("no capabilities", func(t *testing.T) {
		code, _, stderr := runCommand(t, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
			"--", bin, "-p", "1", "-n", "1")
		assertOneLine(t, code, stderr, 1, "lsan: missing CAP_BPF, CAP_PERFMON")
		for _, w := range []string{"CAP_SYS_PTRACE", "kernel.unprivileged_bpf_disabled=", "kernel.perf_event_paranoid=", "run as root"} {
			if !strings.Contains(stderr, w) {
				t.Errorf("stderr %q does not name %s", stderr, w)
			}
		}
	})
}

// runCommand runs any command to completion.
func runCommand(t *testing.T, name string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	return runToEnd(t, cmd)
}

// TestCLINoCheckRan: a target that exits before the first check is not "no
// leaks": lsan says no check ran, exits 4, and JSON gets one record with
// "checked": false.
func TestCLINoCheckRan(t *testing.T) {
	requireRoot(t)
	target := exec.Command("sleep", "3")
	startGroup(t, target)
	pid := target.Process.Pid
	code, stdout, stderr := runLSan(t, nil, "-p", fmt.Sprint(pid), "-i", "1h", "--format", "json")
	if code != 4 {
		t.Errorf("exit status %d, want 4\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	want := fmt.Sprintf("lsan: no check ran: pid %d exited before the first leak check", pid)
	if last := lines[len(lines)-1]; last != want {
		t.Errorf("last stderr line %q, want %q", last, want)
	}
	if !strings.Contains(stderr, "lsan: first check in 1h0m0s (at ") {
		t.Errorf("stderr does not say when the first check comes:\n%s", stderr)
	}
	reps := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(reps) != 1 || !strings.Contains(reps[0], `"checked":false`) || !strings.Contains(reps[0], `"leaks":[]`) {
		t.Errorf("stdout %q, want one JSON record with \"checked\":false", stdout)
	}
}
