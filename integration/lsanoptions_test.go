package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLSanOptionsRootSet: LSAN_OPTIONS' root-set flags change lsan run's
// verdict exactly as they change LeakSanitizer's, on the examples whose
// blocks are reachable only from that kind of root.
func TestLSanOptionsRootSet(t *testing.T) {
	requireRoot(t)
	buildLSanExamples(t)
	examples := map[string]example{}
	for _, ex := range loadExamples(t) {
		examples[ex.Name] = ex
	}
	for _, name := range []string{"root_stack", "root_register", "root_data", "root_bss", "root_tls"} {
		for _, opt := range []string{"use_stacks=0", "use_registers=0", "use_globals=0", "use_tls=0"} {
			t.Run(name+"/"+opt, func(t *testing.T) {
				ex := examples[name]
				ex.Run.Env = map[string]string{"LSAN_OPTIONS": opt}
				code, got, stderr := runExample(t, ex)
				want := lsanWithOptions(t, ex, opt)
				if d := diffGroups(got, want); d != "" {
					t.Errorf("lsan run vs LeakSanitizer with %s:\n%s\n%s", opt, d, stderr)
				}
				if wantCode := map[bool]int{true: 23, false: 0}[len(got) > 0]; code != wantCode {
					t.Errorf("exit status %d, want %d", code, wantCode)
				}
			})
		}
	}
}

// lsanWithOptions runs the clang -fsanitize=leak build with LSAN_OPTIONS.
func lsanWithOptions(t *testing.T, ex example, opts string) []expectGroup {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot, "examples", "bin", "lsan", ex.Name))
	cmd.Env = append(os.Environ(), "LSAN_OPTIONS=fast_unwind_on_malloc=0:allocator_may_return_null=1:"+opts)
	out, _ := cmd.CombinedOutput()
	return parseLSanReport(string(out))
}

// TestLSanOptionsBehaviour: the LSAN_OPTIONS flags that change what lsan
// does, not what it scans, each with LSan's meaning.
func TestLSanOptionsBehaviour(t *testing.T) {
	requireRoot(t)
	lsan(t)
	leaky := filepath.Join(repoRoot, "examples", "bin", "malloc")
	dir := t.TempDir()
	for _, tc := range []struct {
		name, options string
		args          []string
		code          int
		stdout        string // "" : no report expected on stdout
		stderr        string
	}{
		{"detect_leaks=0 runs the command untraced", "detect_leaks=0", nil, 0, "", ""},
		{"leak_check_at_exit=0 checks nothing at exit", "leak_check_at_exit=0", nil, 0, "", ""},
		{"report_objects=yes lists the blocks", "report_objects=yes", nil, 23, "Objects leaked above:", ""},
		{"exitcode", "exitcode=42", nil, 42, "SUMMARY: LeakSanitizer:", ""},
		{"bad value names the key", "use_stacks=maybe", nil, 2, "", "lsan: LSAN_OPTIONS: use_stacks=maybe: want 0 or 1"},
		{"unknown flag warns", "no_such_flag=1", nil, 23, "SUMMARY: LeakSanitizer:", `lsan: warning: LSAN_OPTIONS: unknown flag "no_such_flag" ignored`},
		{"the command line wins", "use_stacks=0", []string{"--use-stacks=true"}, 23, "SUMMARY: LeakSanitizer:", ""},
		{"log_path", "log_path=" + dir + "/report", nil, 23, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"run"}, tc.args...), "--", leaky)
			code, stdout, stderr := runLSanEnv(t, []string{"LSAN_OPTIONS=" + tc.options}, args...)
			if code != tc.code {
				t.Errorf("exit status %d, want %d\n%s", code, tc.code, stderr)
			}
			reported := strings.Contains(stdout, "LeakSanitizer")
			if tc.stdout == "" && reported {
				t.Errorf("unexpected report on stdout:\n%s", stdout)
			}
			if tc.stdout != "" && !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, stdout)
			}
			if tc.stderr != "" && !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, stderr)
			}
		})
	}
	files, _ := filepath.Glob(filepath.Join(dir, "report.*"))
	if len(files) != 1 {
		t.Fatalf("log_path: files %v, want one report.PID", files)
	}
	if data, _ := os.ReadFile(files[0]); !strings.Contains(string(data), "SUMMARY: LeakSanitizer:") {
		t.Errorf("log_path file holds no report:\n%s", data)
	}
}

// runLSanEnv runs lsan with extra environment variables to its end.
func runLSanEnv(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(lsan(t), args...)
	cmd.Env = append(os.Environ(), env...)
	return runToEnd(t, cmd)
}
