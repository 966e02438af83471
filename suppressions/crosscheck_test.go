package suppressions

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lsan-project/lsan/symbolize"
)

// The cross-check builds testdata/lsan with clang -fsanitize=leak, runs it
// under the real LeakSanitizer with each suppression file below, and checks
// that LSan and this package agree on which leaks are hidden and on the
// "Suppressions used:" table, and that both match the expectation written
// here. Stacks for Set.Match come from LSan's own report of the same
// program (a stack_trace_format that prints module, function and file of
// every frame, inlined frames included), so both judge the same frames.
//
// Sizes identify the leaks (see testdata/lsan/leaks.c): 101 quokka_direct,
// 102 foo_foo, 103 abab, 104 leak_in_other_file (other_file.c), 105
// leaky_lib_alloc (libleaky.so), 106 inlined_helper inlined into
// outer_for_inline, 107 ns::func(), 108 deep_leaf < deep_mid < deep_top,
// 109 order_b < order_a, 110 dollar$fn, 111 twice (two call sites).
var crossCheckCases = []struct {
	name, file string
	suppressed []uint64 // sizes LSan hides, ascending
	used       []string // "TEMPLATE COUNT BYTES", in table order
}{
	{"substring", "leak:quokka\n", []uint64{101}, []string{"quokka 1 101"}},
	{"anchored both ends", "leak:^quokka_direct$\n", []uint64{101}, []string{"^quokka_direct$ 1 101"}},
	{"start anchor misses", "leak:^okka\n", nil, nil},
	{"end anchor without backtracking", "leak:foo$\n", nil, nil},
	{"star then end anchor", "leak:*oo$\n", nil, nil},
	{"end anchor after last occurrence", "leak:oo_foo$\n", []uint64{102}, []string{"oo_foo$ 1 102"}},
	{"star without backtracking", "leak:a*b$\n", nil, nil},
	{"anchored star", "leak:^ab*ab$\n", []uint64{103}, []string{"^ab*ab$ 1 103"}},
	{"file substring", "leak:other_file.c\n", []uint64{104}, []string{"other_file.c 1 104"}},
	{"file is a full path", "leak:^other_file.c\n", nil, nil},
	{"file suffix", "leak:*/other_file.c$\n", []uint64{104}, []string{"*/other_file.c$ 1 104"}},
	{"module", "leak:libleaky\n", []uint64{105}, []string{"libleaky 1 105"}},
	{"module before function at one PC", "leak:leaky_lib_alloc\nleak:libleaky.so\n", []uint64{105}, []string{"libleaky.so 1 105"}},
	{"inlined frame", "leak:inlined_helper\n", []uint64{106}, []string{"inlined_helper 1 106"}},
	{"frame an inline was inlined into", "leak:^outer_for_inline$\n", []uint64{106}, []string{"^outer_for_inline$ 1 106"}},
	{"C++ name", "leak:ns::func\n", []uint64{107}, []string{"ns::func 1 107"}},
	{"C++ name with parameters", "leak:^ns::func()$\n", []uint64{107}, []string{"^ns::func()$ 1 107"}},
	{"C++ name without parameters", "leak:^ns::func$\n", nil, nil},
	{"deep frame", "leak:deep_top\n", []uint64{108}, []string{"deep_top 1 108"}},
	{"inner frame beats earlier rule", "leak:deep_top\nleak:deep_mid\n", []uint64{108}, []string{"deep_mid 1 108"}},
	{"caller and callee", "leak:order_a\nleak:order_b\n", []uint64{109}, []string{"order_b 1 109"}},
	{"literal dollar", "leak:dollar$fn\n", nil, nil},
	{"dollar through star", "leak:dollar*fn\n", []uint64{110}, []string{"dollar*fn 1 110"}},
	{"two groups one rule", "leak:twice\n", []uint64{111, 111}, []string{"twice 2 222"}},
	{"first rule wins", "leak:quokka\nleak:quokka_direct\n", []uint64{101}, []string{"quokka 1 101"}},
	{"table in rule order", "leak:twice\nleak:abab\nleak:quokka\n", []uint64{101, 103, 111, 111},
		[]string{"twice 2 222", "abab 1 103", "quokka 1 101"}},
	{"star", "leak:*\n", everyLeak, []string{"* 12 1277"}},
	{"caret", "leak:^\n", everyLeak, []string{"^ 12 1277"}},
	{"dollar alone", "leak:$\n", nil, nil},
	{"allocator frame", "leak:malloc\n", everyLeak, []string{"malloc 12 1277"}},
	{"outermost module", "leak:libc.so\n", everyLeak, []string{"libc.so 12 1277"}},
	{"comments, blanks, white space",
		"# comment\n\n   # indented comment\n\tleak:abab \t\n  leak:foo_foo\n", []uint64{102, 103},
		[]string{"abab 1 103", "foo_foo 1 102"}},
	{"CRLF line ends", "leak:abab\r\nleak:foo_foo\r\n", []uint64{102, 103}, []string{"abab 1 103", "foo_foo 1 102"}},
	{"leading space is part of the pattern", "leak: abab\n", nil, nil},
}

var everyLeak = []uint64{101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 111}

// lsan14Defaults are the built-in rules of the LSan 14 runtime used here.
const lsan14Defaults = "leak:*tls_get_addr*\n"

func TestCrossCheckWithLSan(t *testing.T) {
	prog := buildLeakProgram(t, needLSan(t))
	baseline := prog.run(t, "")
	if got := baseline.sizes(); !slices.Equal(got, everyLeak) {
		t.Fatalf("without suppressions LSan reports sizes %v, want %v", got, everyLeak)
	}
	for _, c := range crossCheckCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			lsan := prog.run(t, c.file)
			mine, used := applyWithThisPackage(t, c.file, baseline.groups)

			lsanSuppressed := difference(baseline.sizes(), lsan.sizes())
			if !slices.Equal(lsanSuppressed, c.suppressed) {
				t.Errorf("LSan suppressed %v, want %v", lsanSuppressed, c.suppressed)
			}
			if !slices.Equal(mine, c.suppressed) {
				t.Errorf("Set.Match suppressed %v, want %v", mine, c.suppressed)
			}
			if !slices.Equal(lsan.used, c.used) {
				t.Errorf("LSan's table %q, want %q", lsan.used, c.used)
			}
			if !slices.Equal(used, c.used) {
				t.Errorf("Set.Used gives %q, want %q", used, c.used)
			}
		})
	}
}

// TestSuggestAgainstLSan checks that the rule Suggest proposes for each leak
// of the program hides that leak under the real LSan and under Set.Match.
func TestSuggestAgainstLSan(t *testing.T) {
	prog := buildLeakProgram(t, needLSan(t))
	baseline := prog.run(t, "")
	for _, g := range baseline.groups {
		rule := Suggest(g.stack)
		t.Run(fmt.Sprintf("%d_%s", g.size, rule), func(t *testing.T) {
			t.Parallel()
			if rule == "" {
				t.Fatalf("no suggestion for %d-byte leak: %s", g.size, SuggestFor(g.stack).Reason)
			}
			set, _, err := Parse("suggested", strings.NewReader(rule))
			if err != nil {
				t.Fatal(err)
			}
			if set.Match(g.stack) == nil {
				t.Errorf("%s does not match its own stack", rule)
			}
			for _, left := range prog.run(t, rule+"\n").groups {
				if left.key == g.key {
					t.Errorf("LSan still reports the %d-byte leak with %s", g.size, rule)
				}
			}
		})
	}
}

// applyWithThisPackage suppresses the baseline groups with this package the
// way lsan's session does, and returns the hidden sizes and Used() as
// "TEMPLATE COUNT BYTES" lines.
func applyWithThisPackage(t *testing.T, file string, groups []lsanGroup) ([]uint64, []string) {
	t.Helper()
	user, _, err := Parse("case.supp", strings.NewReader(file))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	std, _, err := Parse("lsan14", strings.NewReader(lsan14Defaults))
	if err != nil {
		t.Fatal(err)
	}
	set := user.Merge(std)
	set.ResetCounts()
	var hidden []uint64
	for _, g := range groups {
		if r := set.Match(g.stack); r != nil {
			set.Record(r, g.count, g.size*uint64(g.count))
			hidden = append(hidden, g.size)
		}
	}
	slices.Sort(hidden)
	var used []string
	for _, r := range set.Used() {
		used = append(used, fmt.Sprintf("%s %d %d", r.Pattern, r.Hits, r.Bytes))
	}
	return hidden, used
}

func difference(all, left []uint64) []uint64 {
	var gone []uint64
	rest := slices.Clone(left)
	for _, s := range all {
		if i := slices.Index(rest, s); i >= 0 {
			rest = slices.Delete(rest, i, i+1)
			continue
		}
		gone = append(gone, s)
	}
	return gone
}

type leakProgram struct {
	dir, bin string
}

// buildLeakProgram compiles testdata/lsan into a temporary directory.
func buildLeakProgram(t *testing.T, tc *lsanToolchain) *leakProgram {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"leaks.c", "other_file.c", "libleaky.c", "nsfunc.cpp"} {
		data, err := os.ReadFile(filepath.Join("testdata", "lsan", name))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name), string(data))
	}
	tc.run(t, dir, tc.cc, "-g", "-O0", "-fPIC", "-shared", "libleaky.c", "-o", "libleaky.so")
	tc.run(t, dir, tc.cc, "-g", "-O0", "-fsanitize=leak", "-c", "leaks.c", "other_file.c")
	tc.run(t, dir, tc.cxx, "-g", "-O0", "-fsanitize=leak", "-c", "nsfunc.cpp")
	tc.run(t, dir, tc.cxx, "-fsanitize=leak", "leaks.o", "other_file.o", "nsfunc.o",
		"-L.", "-lleaky", "-Wl,-rpath,$ORIGIN", "-o", "leaks")
	return &leakProgram{dir: dir, bin: filepath.Join(dir, "leaks")}
}

// lsanFrameFormat prints every field Set.Match looks at, '|'-separated.
const lsanFrameFormat = `    #%n|%m|%f|%s|%l`

// lsanRun is what one LSan run reported.
type lsanRun struct {
	groups []lsanGroup
	used   []string // "TEMPLATE COUNT BYTES"
}

type lsanGroup struct {
	size  uint64 // bytes per object
	count int
	stack []symbolize.Frame
	key   string // the stack without addresses, to tell groups apart
}

func (r lsanRun) sizes() []uint64 {
	var s []uint64
	for _, g := range r.groups {
		s = append(s, g.size)
	}
	slices.Sort(s)
	return s
}

// run executes the program with the given suppression file content ("" for
// none) and parses LSan's report.
func (p *leakProgram) run(t *testing.T, suppressions string) lsanRun {
	t.Helper()
	opts := fmt.Sprintf(`stack_trace_format="%s"`, lsanFrameFormat)
	if suppressions != "" {
		f, err := os.CreateTemp(p.dir, "*.supp")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(suppressions); err != nil {
			t.Fatal(err)
		}
		f.Close()
		opts += fmt.Sprintf(`:suppressions="%s"`, f.Name())
	}
	cmd := exec.Command(p.bin)
	cmd.Dir = p.dir
	cmd.Env = append(environWithout("LSAN_OPTIONS", "ASAN_OPTIONS"), "LSAN_OPTIONS="+opts)
	out, err := cmd.CombinedOutput()
	if exit, ok := err.(*exec.ExitError); err != nil && !(ok && exit.ExitCode() == 23) {
		t.Fatalf("run %s: %v\n%s", p.bin, err, out)
	}
	run, perr := parseLSanReport(string(out))
	if perr != nil {
		t.Fatalf("%v\n%s", perr, out)
	}
	return run
}

func environWithout(names ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(names, name) {
			env = append(env, kv)
		}
	}
	return env
}

var (
	leakHeader  = regexp.MustCompile(`^(Direct|Indirect) leak of (\d+) byte\(s\) in (\d+) object\(s\) allocated from:$`)
	frameLine   = regexp.MustCompile(`^    #(\d+)\|([^|]*)\|([^|]*)\|([^|]*)\|(\d+)$`)
	usedRow     = regexp.MustCompile(`^ *(\d+) +(\d+) (.*)$`)
	usedHeading = "Suppressions used:"
)

// parseLSanReport reads the leak groups and the "Suppressions used:" table.
func parseLSanReport(out string) (lsanRun, error) {
	var run lsanRun
	var cur *lsanGroup
	var frameNumbers []string
	inTable := false
	finish := func() {
		if cur != nil {
			markInlined(cur.stack, frameNumbers)
			run.groups = append(run.groups, *cur)
			cur, frameNumbers = nil, nil
		}
	}
	for _, line := range strings.Split(out, "\n") {
		switch {
		case leakHeader.MatchString(line):
			finish()
			m := leakHeader.FindStringSubmatch(line)
			total, _ := strconv.ParseUint(m[2], 10, 64)
			count, _ := strconv.Atoi(m[3])
			cur = &lsanGroup{size: total / uint64(count), count: count}
		case cur != nil && frameLine.MatchString(line):
			m := frameLine.FindStringSubmatch(line)
			lineNo, _ := strconv.Atoi(m[5])
			cur.stack = append(cur.stack, symbolize.Frame{
				Module: orEmpty(m[2]), Function: orEmpty(m[3]), File: orEmpty(m[4]), Line: lineNo,
			})
			frameNumbers = append(frameNumbers, m[1])
			cur.key += fmt.Sprintf("%s|%s|%s|%s;", m[1], m[3], m[4], m[5])
		case line == usedHeading:
			finish()
			inTable = true
		case inTable && usedRow.MatchString(line):
			m := usedRow.FindStringSubmatch(line)
			run.used = append(run.used, fmt.Sprintf("%s %s %s", m[3], m[1], m[2]))
		case strings.HasPrefix(line, "----"):
			finish()
			inTable = false
		case line == "":
			finish()
		case strings.Contains(line, "failed to parse") || strings.Contains(line, "fatal error"):
			return run, fmt.Errorf("LSan failed: %s", line)
		}
	}
	finish()
	return run, nil
}

// markInlined sets Inlined on every frame that shares its frame number with
// the next one: LSan prints a PC's inlined frames under one number.
func markInlined(stack []symbolize.Frame, numbers []string) {
	for i := 0; i+1 < len(stack); i++ {
		stack[i].Inlined = numbers[i] == numbers[i+1]
	}
}

func orEmpty(field string) string {
	if field == "<null>" {
		return ""
	}
	return field
}
