package integration

import (
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestCLIFlagValidation: out-of-range values are usage errors in the
// user's terms, never truncated or replaced by the default.
func TestCLIFlagValidation(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		flag string
		want string
	}{
		{"--max-blocks=0", "lsan: --max-blocks 0: must be at least 1"},
		{"--max-blocks=4294967296", "lsan: --max-blocks 4294967296: must be at most 67108864"},
		{"--max-blocks=99999999999", "lsan: --max-blocks 99999999999: must be at most 67108864"},
		{"--max-stacks=0", "lsan: --max-stacks 0: must be at least 1"},
		{"--max-stacks=4294967296", "lsan: --max-stacks 4294967296: must be at most 4194304"},
		{"--max-unwind-rows=0", "lsan: --max-unwind-rows 0: must be at least 1"},
		{"--sample-rate=0", "lsan: --sample-rate 0: must be at least 1"},
		{"--sample-rate=4294967297", "lsan: --sample-rate 4294967297: must be at most 4294967295"},
		{"--exitcode=300", "lsan: --exitcode 300: an exit status is 0 to 255"},
		{"--exitcode=-1", "lsan: --exitcode -1: an exit status is 0 to 255"},
		{"--top=-5", "lsan: --top -5: want a count of groups, 0 for all"},
		{"--older=-5s", "lsan: --older -5s: an age cannot be negative"},
	} {
		t.Run(tc.flag, func(t *testing.T) {
			code, _, stderr := runLSan(t, nil, "-p", "1", "-n", "1", tc.flag)
			assertOneLine(t, code, stderr, 2, tc.want)
		})
	}
}

// TestCLIDebugDirWarning: a --debug-dir that does not exist is a warning,
// and the check still runs.
func TestCLIDebugDirWarning(t *testing.T) {
	requireRoot(t)
	target := exec.Command("sleep", "60")
	startGroup(t, target)
	code, _, stderr := runLSan(t, nil, "-p", fmt.Sprint(target.Process.Pid), "-n", "1", "-i", "100ms",
		"--mode", "outstanding", "--debug-dir", "/nonexistent")
	first := strings.SplitN(stderr, "\n", 2)[0]
	if want := "lsan: warning: --debug-dir /nonexistent: no such file or directory"; first != want {
		t.Errorf("first stderr line %q, want %q", first, want)
	}
	if code != 0 {
		t.Errorf("exit status %d, want 0\n%s", code, stderr)
	}
}

// TestCLIHelp: every value flag names its value, the required --pid shows
// no default, --top shows one.
func TestCLIHelp(t *testing.T) {
	code, stdout, _ := runLSan(t, nil, "--help")
	if code != 0 {
		t.Fatalf("exit status %d", code)
	}
	for _, line := range strings.Split(stdout, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "--") {
			continue
		}
		if strings.Contains(line, " value") {
			t.Errorf("placeholder reads value: %q", line)
		}
		if strings.Count(line, "(default:") > 1 {
			t.Errorf("two defaults: %q", line)
		}
		if strings.HasPrefix(line, "--pid") && strings.Contains(line, "default") {
			t.Errorf("required --pid shows a default: %q", line)
		}
		if strings.Contains(line, "(default: false)") {
			t.Errorf("a switch shows its default: %q", line)
		}
	}
	if !strings.Contains(stdout, "--pid PID, -p PID") {
		t.Errorf("no --pid PID in\n%s", stdout)
	}
}

// TestCLIVersion: --version names the version, the commit, the Go
// toolchain and the embedded BPF object by its sha256.
func TestCLIVersion(t *testing.T) {
	code, stdout, _ := runLSan(t, nil, "--version")
	if code != 0 {
		t.Fatalf("exit status %d", code)
	}
	obj, err := os.ReadFile(filepath.Join(repoRoot, "bpf", "tracer_x86_bpfel.o"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	want := []string{"lsan ", "commit: ", "go: " + runtime.Version(), fmt.Sprintf("bpf object: sha256:%x", sha256.Sum256(obj))}
	if len(lines) != len(want) {
		t.Fatalf("--version:\n%s", stdout)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d %q, want it to start with %q", i+1, lines[i], want[i])
		}
	}
}

// TestCLIMakeInstall: make install honours PREFIX and DESTDIR and installs
// the binary, its man page and the bash, zsh and fish completions.
func TestCLIMakeInstall(t *testing.T) {
	stage := t.TempDir()
	cmd := exec.Command("make", "-s", "install", "PREFIX=/usr", "DESTDIR="+stage)
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{"bin/lsan", "share/man/man8/lsan.8", "share/bash-completion/completions/lsan",
		"share/zsh/site-functions/_lsan", "share/fish/vendor_completions.d/lsan.fish"} {
		if _, err := os.Stat(filepath.Join(stage, "usr", f)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	man, _ := os.ReadFile(filepath.Join(stage, "usr/share/man/man8/lsan.8"))
	for _, flag := range []string{"--max-blocks", "--pid", "--sample-rate", "run"} {
		if !strings.Contains(string(man), flag) {
			t.Errorf("man page lacks %s", flag)
		}
	}
}

// TestCLIErrorsTable: every message in docs/usage.md's table "Errors and
// what they mean" is asserted by a test of this package, so the table
// cannot name a message lsan no longer prints.
func TestCLIErrorsTable(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "usage.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "## Errors and what they mean")
	if !ok {
		t.Fatal("docs/usage.md has no section \"Errors and what they mean\"")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	tests, err := filepath.Glob(filepath.Join(repoRoot, "integration", "*_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	var sources strings.Builder
	for _, f := range tests {
		data, _ := os.ReadFile(f)
		sources.Write(data)
	}
	rows := 0
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		rows++
		msg := strings.SplitN(line, "`", 3)[1]
		// In Go sources the message's quotes are escaped or in a raw string.
		if !strings.Contains(sources.String(), msg) && !strings.Contains(sources.String(), strings.ReplaceAll(msg, `"`, `\"`)) {
			t.Errorf("no test asserts %q", msg)
		}
	}
	if rows < 15 {
		t.Errorf("only %d rows in the table", rows)
	}
}
