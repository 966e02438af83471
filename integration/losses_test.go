package integration

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestLossesAreReported: whatever lsan loses is said on stderr when it
// happens and in the report (JSON: dropped counts and complete:false), and
// a verdict that rests on lost allocations ends with exit status 3 — with
// leaks found or without. Lost stacks alone shorten stacks, not verdicts.
func TestLossesAreReported(t *testing.T) {
	requireRoot(t)
	lsan(t)
	for _, tc := range []struct {
		name, example string
		args          []string
		code          int
		stderr        string
		dropped       string // the JSON dropped field that must be > 0
	}{
		{"block map full, leaks", "list", []string{"--max-blocks", "16"}, 3, "allocation(s) not recorded: the block map is full (16 blocks", "allocs"},
		{"block map full, no leaks", "threads", []string{"--max-blocks", "16"}, 3, "allocation(s) not recorded: the block map is full (16 blocks", "allocs"},
		{"stack map full", "list", []string{"--max-stacks", "1"}, 23, "allocation stack(s) not stored: the stack map is full", "stacks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := filepath.Join(repoRoot, "examples", "bin", tc.example)
			// The BPF maps' bounds: the uprobe tracer's (the in-process
			// recorder's live set has none).
			args := append(append([]string{"run", "--tracer", "uprobe", "--format", "json"}, tc.args...), "--", bin)
			code, stdout, stderr := runLSanEnv(t, nil, args...)
			if code != tc.code {
				t.Errorf("exit status %d, want %d\n%s", code, tc.code, stderr)
			}
			if !strings.Contains(stderr, "lsan: warning: ") || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr lacks the warning %q:\n%s", tc.stderr, stderr)
			}
			if said := strings.Contains(stderr, "lsan: the last check ran on incomplete data"); said != (tc.code == 3) {
				t.Errorf("exit status %d, and the incomplete-data line said: %v\n%s", tc.code, said, stderr)
			}
			var rep struct {
				Dropped  map[string]uint64 `json:"dropped"`
				Complete *bool             `json:"complete"`
			}
			lines := jsonLines(stdout)
			if len(lines) == 0 {
				t.Fatalf("no JSON report:\n%s", stdout)
			}
			if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Complete == nil || *rep.Complete {
				t.Errorf("complete is %v, want false", rep.Complete)
			}
			if rep.Dropped[tc.dropped] == 0 {
				t.Errorf("dropped %v: %s is 0", rep.Dropped, tc.dropped)
			}
		})
	}
}

// TestCompleteReport: with nothing lost, the report says complete:true.
func TestCompleteReport(t *testing.T) {
	requireRoot(t)
	code, stdout, stderr := runLSan(t, nil, "run", "--format", "json", "--", filepath.Join(repoRoot, "examples", "bin", "list"))
	if code != 23 {
		t.Errorf("exit status %d, want 23\n%s", code, stderr)
	}
	lines := jsonLines(stdout)
	if len(lines) == 0 || !strings.Contains(lines[len(lines)-1], `"complete":true`) {
		t.Errorf("report not complete:\n%s", stdout)
	}
}

func jsonLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "{") {
			lines = append(lines, l)
		}
	}
	return lines
}
