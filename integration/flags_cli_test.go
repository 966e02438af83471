package integration

import (
	"fmt"
	"os/exec"
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
