package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

type suppressed struct {
	Pattern string
	Count   int
	Bytes   uint64
}

// TestSuppressionsOnExamples runs leak checks on examples with LSan-format
// suppression files (wildcards, anchors, function, source file and module
// patterns) and checks what remains, the "Suppressions used" counts, and
// that LeakSanitizer with the same file hides the same leaks.
func TestSuppressionsOnExamples(t *testing.T) {
	requireRoot(t)
	lsan(t)
	buildLSanExamples(t)
	examples := map[string]example{}
	for _, ex := range loadExamples(t) {
		examples[ex.Name] = ex
	}
	for _, tc := range []struct {
		name, example, file string
		remaining           []string // call sites still reported
		used                []suppressed
	}{
		{
			name: "anchors and wildcards", example: "leak_apis",
			file: "# functions, anchored and with wildcards\nleak:^leak_m*alloc$\n\nleak:^leak_str\r\n" +
				"  leak:posix_memalign  \nrace:not_a_leak_rule\n",
			remaining: []string{"leak_aligned_alloc", "leak_calloc", "leak_memalign", "leak_realloc", "leak_reallocarray", "leak_valloc"},
			used:      []suppressed{{"leak:^leak_m*alloc$", 1, 31}, {"leak:^leak_str", 2, 18}, {"leak:posix_memalign", 1, 320}},
		},
		{
			name: "source file", example: "malloc",
			file:      "leak:examples/malloc/malloc.c\n",
			remaining: nil,
			used:      []suppressed{{"leak:examples/malloc/malloc.c", 3, 3060}},
		},
		{
			name: "module", example: "direct_loop",
			file:      "leak:direct_loop$\n",
			remaining: nil,
		},
		{
			// The payload's stack does not contain make_holder; it is hidden
			// because only the suppressed holder reaches it.
			name: "suppressed direct leak hides what only it reaches", example: "suppress_reach",
			file:      "leak:^make_holder$\n",
			remaining: nil,
			used:      []suppressed{{"leak:^make_holder$", 1, 32}},
		},
		{
			// The direct head and its indirect nodes share build_list's
			// stack, and build_list is in the payloads' stacks too: all 20
			// blocks are hidden, as LSan hides them.
			name: "a function deep in the stack", example: "list",
			file:      "leak:^build_list$\n",
			remaining: nil,
			used:      []suppressed{{"leak:^build_list$", 20, 740}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := examples[tc.example]
			supp := filepath.Join(t.TempDir(), "lsan.supp")
			os.WriteFile(supp, []byte(tc.file), 0o644)
			p := startExample(t, ex)
			a := attach(t, p.Pid(), "--format", "json", "-i", "1h", "-s", supp)
			p.trigger(t)
			code := a.stop(t)
			last := parseReports(t, a.stdout.String())
			r := last[len(last)-1]
			var sites []string
			for _, g := range groupsByFunction(r, false) {
				sites = append(sites, g.Function)
			}
			if strings.Join(sites, ",") != strings.Join(tc.remaining, ",") {
				t.Errorf("reported %v, want %v", sites, tc.remaining)
			}
			if tc.used != nil {
				var used []suppressed
				for _, s := range r.Suppressed {
					used = append(used, suppressed{s.Pattern, s.Count, s.Bytes})
				}
				if fmt.Sprint(used) != fmt.Sprint(tc.used) {
					t.Errorf("suppressions used %v, want %v", used, tc.used)
				}
			}
			if want := map[bool]int{true: 23, false: 0}[len(tc.remaining) > 0]; code != want {
				t.Errorf("exit status %d, want %d", code, want)
			}
			if tc.example == "leak_apis" && !strings.Contains(a.stderr.String(), "race:") {
				t.Errorf("no warning about the race: line: %s", a.stderr.String())
			}
			compareWithLSan(t, ex, supp, sites, tc.used)
		})
	}
}

var lsanUsedRow = regexp.MustCompile(`^\s+(\d+)\s+(\d+)\s+(.+)$`)

// compareWithLSan runs the LSan build with the same suppression file.
func compareWithLSan(t *testing.T, ex example, supp string, sites []string, used []suppressed) {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot, "examples", "bin", "lsan", ex.Name))
	// LSan refuses files with other sanitizers' rules: give it the rest.
	data, _ := os.ReadFile(supp)
	var keep []string
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "race:") {
			keep = append(keep, line)
		}
	}
	lsanSupp := supp + ".lsan"
	os.WriteFile(lsanSupp, []byte(strings.Join(keep, "\n")), 0o644)
	cmd.Env = append(os.Environ(), "LSAN_OPTIONS=fast_unwind_on_malloc=0:allocator_may_return_null=1:suppressions="+lsanSupp)
	out, _ := cmd.CombinedOutput()
	var lsanSites []string
	for _, g := range parseLSanReport(string(out)) {
		if !containsString(lsanSites, g.Function) {
			lsanSites = append(lsanSites, g.Function)
		}
	}
	if strings.Join(lsanSites, ",") != strings.Join(sites, ",") {
		t.Errorf("LeakSanitizer with the same file reports %v, lsan %v\n%s", lsanSites, sites, out)
	}
	var lsanUsed []suppressed
	inTable := false
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "Suppressions used:"):
			inTable = true
		case strings.HasPrefix(line, "---"):
			inTable = false
		case inTable:
			if m := lsanUsedRow.FindStringSubmatch(line); m != nil {
				c, _ := strconv.Atoi(m[1])
				b, _ := strconv.ParseUint(m[2], 10, 64)
				lsanUsed = append(lsanUsed, suppressed{"leak:" + m[3], c, b})
			}
		}
	}
	if used != nil && fmt.Sprint(lsanUsed) != fmt.Sprint(used) {
		t.Errorf("LeakSanitizer's suppressions used %v, lsan's %v", lsanUsed, used)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestPrintSuppressions: --print-suppressions gives, for each reported
// group, a rule that hides exactly it when pasted into a file.
func TestPrintSuppressions(t *testing.T) {
	requireRoot(t)
	for _, ex := range loadExamples(t) {
		if ex.Name != "list" {
			continue
		}
		p := startExample(t, ex)
		a := attach(t, p.Pid(), "-i", "1h", "--print-suppressions")
		p.trigger(t)
		a.stop(t)
		out := a.stdout.String()
		want := "Suggested suppressions (paste into a file given with -s):\nleak:^build_list$\nleak:^make_payload$\n"
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
		return
	}
	t.Fatal("no list example")
}

// TestLSanOptionsSuppressions: a setup made for LSan
// (LSAN_OPTIONS=suppressions=FILE) works unchanged.
func TestLSanOptionsSuppressions(t *testing.T) {
	requireRoot(t)
	for _, ex := range loadExamples(t) {
		if ex.Name != "malloc" {
			continue
		}
		supp := filepath.Join(t.TempDir(), "from-env.supp")
		os.WriteFile(supp, []byte("leak:^leak_medium$\n"), 0o644)
		p := startExample(t, ex)
		a := attachEnv(t, p.Pid(), []string{"LSAN_OPTIONS=suppressions=" + supp + ":report_objects=1"}, "--format", "json", "-i", "1h")
		p.trigger(t)
		if code := a.stop(t); code != 0 {
			t.Errorf("exit status %d, want 0 (the only leak is suppressed)", code)
		}
		reps := parseReports(t, a.stdout.String())
		r := reps[len(reps)-1]
		if len(r.Leaks) != 0 || len(r.Suppressed) != 1 || r.Suppressed[0].Count != 3 || r.Suppressed[0].Bytes != 3060 {
			t.Errorf("leaks %d, suppressed %+v; want none and leak:^leak_medium$ hiding 3 objects, 3060 bytes", len(r.Leaks), r.Suppressed)
		}
		return
	}
	t.Fatal("no malloc example")
}
