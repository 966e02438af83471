package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// runLSan runs lsan to completion and returns its exit status and output.
func runLSan(t *testing.T, cred *syscall.Credential, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(lsan(t), args...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return runToEnd(t, cmd)
}

// TestBadInput: every mistake gets one clear line on stderr and the
// contract's exit status, never a Go stack trace.
func TestBadInput(t *testing.T) {
	requireRoot(t)
	self := os.Getpid()
	stripped := filepath.Join(t.TempDir(), "stripped-static")
	src := filepath.Join(repoRoot, "examples", "malloc", "malloc.c")
	if out, err := exec.Command("musl-gcc", "-static", "-s", "-O1", "-o", stripped, src).CombinedOutput(); err != nil {
		t.Fatalf("musl-gcc: %v\n%s", err, out)
	}
	strippedProc := exec.Command(stripped)
	strippedProc.Env = append(os.Environ(), "LSAN_EXAMPLE_DAEMON=1")
	stdin, _ := strippedProc.StdinPipe()
	strippedProc.Stdout = nil
	inOwnGroup(t, strippedProc)
	if err := strippedProc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); strippedProc.Process.Kill(); strippedProc.Wait() }()
	// A process of the same unprivileged user: readable, but not traceable
	// without CAP_BPF.
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	sleeper := exec.Command("sleep", "60")
	sleeper.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
	inOwnGroup(t, sleeper)
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	badSupp := filepath.Join(t.TempDir(), "bad.supp")
	os.WriteFile(badSupp, []byte("# ok\nleak:fine\nnot a rule\n"), 0o644)

	for _, tc := range []struct {
		name string
		cred *syscall.Credential
		args []string
		code int
		want string
	}{
		{"no such pid", nil, []string{"-p", "1073741800", "-n", "1"}, 1, "lsan: no process with pid 1073741800"},
		{"missing -p", nil, []string{"-n", "1"}, 2, "lsan: -p PID is required (see lsan --help)"},
		{"bad mode", nil, []string{"-p", "1", "--mode", "nope"}, 2, `lsan: --mode "nope": want leaks or outstanding (see lsan --help)`},
		{"unknown flag", nil, []string{"--frobnicate"}, 2, "lsan: flag provided but not defined: -frobnicate (see lsan --help)"},
		{"malformed suppression", nil, []string{"-p", "1", "-s", badSupp}, 1, "lsan: " + badSupp + ":3: "},
		{"missing suppression file", nil, []string{"-p", "1", "-s", "/nonexistent.supp"}, 1, "lsan: "},
		{"stripped static binary", nil, []string{"-p", strconv.Itoa(strippedProc.Process.Pid), "-n", "1"}, 1, "no malloc found"},
		{"no privileges over a root process", nobody, []string{"-p", strconv.Itoa(self), "-n", "1"}, 1, "lsan: missing CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE"},
		{"no BPF privileges", nobody, []string{"-p", strconv.Itoa(sleeper.Process.Pid), "-n", "1"}, 1, "lsan: missing CAP_BPF, CAP_PERFMON ("},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runLSan(t, tc.cred, tc.args...)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if code != tc.code {
				t.Errorf("exit status %d, want %d (stderr %q)", code, tc.code, stderr)
			}
			last := lines[len(lines)-1]
			if !strings.Contains(last, tc.want) {
				t.Errorf("stderr %q, want a line containing %q", stderr, tc.want)
			}
			if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
				t.Errorf("stack trace on stderr: %s", stderr)
			}
		})
	}
}
