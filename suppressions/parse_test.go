package suppressions

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func patterns(s *Set) []string {
	var p []string
	for _, r := range s.Rules {
		p = append(p, r.Pattern)
	}
	return p
}

func warningTexts(ws []Warning) []string {
	var s []string
	for _, w := range ws {
		s = append(s, w.String())
	}
	return s
}

func TestParseAcceptsLSanSyntax(t *testing.T) {
	cases := []struct {
		name, in string
		want     []string
	}{
		{"one rule", "leak:foo\n", []string{"foo"}},
		{"no final newline", "leak:foo", []string{"foo"}},
		{"empty file", "", nil},
		{"comments and blank lines", "# header\n\nleak:a\n   # indented comment\n\t\nleak:b\n", []string{"a", "b"}},
		{"surrounding white space", "  \tleak:abab \t \n", []string{"abab"}},
		{"CRLF", "# c\r\n\r\nleak:a\r\nleak:b\r\n", []string{"a", "b"}},
		{"white space before CR", "leak:a \t\r\n", []string{"a"}},
		{"C++ names split at the first colon", "leak:ns::func\nleak:^std::vector<int>::push_back$\n",
			[]string{"ns::func", "^std::vector<int>::push_back$"}},
		{"inner white space kept", "leak:operator new(unsigned long)\n", []string{"operator new(unsigned long)"}},
		{"leading white space of the pattern kept", "leak: abab\n", []string{" abab"}},
		{"hash inside a pattern", "leak:#define\n", []string{"#define"}},
		{"wildcards and anchors", "leak:*\nleak:^\nleak:^a*b$\n", []string{"*", "^", "^a*b$"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set, _, err := Parse("x.supp", strings.NewReader(c.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := patterns(set); !slices.Equal(got, c.want) {
				t.Errorf("patterns %q, want %q", got, c.want)
			}
		})
	}
}

func TestParseRecordsLocation(t *testing.T) {
	set, _, err := Parse("app.supp", strings.NewReader("# c\n\nleak:a\nleak:b\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Rules) != 2 {
		t.Fatalf("%d rules", len(set.Rules))
	}
	r := set.Rules[1]
	if r.File != "app.supp" || r.Line != 4 || r.Default || r.String() != "leak:b" {
		t.Errorf("rule %+v, String %q", *r, r.String())
	}
}

func TestParseWarnings(t *testing.T) {
	in := strings.Join([]string{
		"race:foo",                       // 1
		"leak:keep_me",                   // 2
		"interceptor_via_fun:bar",        // 3
		"signed-integer-overflow:file.c", // 4
		"deadlock:*",                     // 5
		"leak: abab",                     // 6
		"leak:$",                         // 7
		"leak:foo$bar",                   // 8
		"leak:a^b",                       // 9
		"called_from_lib:libfoo.so",      // 10
		"vptr_check:Base",                // 11
		"odr_violation:^g$",              // 12
		"alloc_dealloc_mismatch:f",       // 13
		"thread:",                        // 14: empty pattern of another tool is skipped too
	}, "\n")
	set, warnings, err := Parse("shared.supp", strings.NewReader(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := patterns(set), []string{"keep_me", " abab", "$", "foo$bar", "a^b"}; !slices.Equal(got, want) {
		t.Errorf("patterns %q, want %q", got, want)
	}
	want := []string{
		`shared.supp:1: "race:" rule is for ThreadSanitizer; skipped`,
		`shared.supp:3: "interceptor_via_fun:" rule is for AddressSanitizer; skipped`,
		`shared.supp:4: "signed-integer-overflow:" rule is for UndefinedBehaviorSanitizer; skipped`,
		`shared.supp:5: "deadlock:" rule is for ThreadSanitizer; skipped`,
		`shared.supp:6: pattern " abab" starts with white space, which is part of the pattern (as in LSan)`,
		`shared.supp:7: pattern "$" never matches anything: '$' anchors the end before any text`,
		`shared.supp:8: pattern "foo$bar": matching stops at the first '$', so "bar" after it is ignored (as in LSan)`,
		`shared.supp:9: pattern "a^b": '^' anchors only at the start of a pattern; elsewhere it is a literal '^'`,
		`shared.supp:10: "called_from_lib:" rule is for ThreadSanitizer; skipped`,
		`shared.supp:11: "vptr_check:" rule is for UndefinedBehaviorSanitizer; skipped`,
		`shared.supp:12: "odr_violation:" rule is for AddressSanitizer; skipped`,
		`shared.supp:13: "alloc_dealloc_mismatch:" rule is for AddressSanitizer; skipped`,
		`shared.supp:14: "thread:" rule is for ThreadSanitizer; skipped`,
	}
	if got := warningTexts(warnings); !slices.Equal(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"no type", "leak:ok\nfoo\n", `bad.supp:2: not a suppression: want "leak:PATTERN", got "foo"`},
		{"unknown type", "leek:foo", `bad.supp:1: unknown suppression type "leek" (want "leak:PATTERN")`},
		{"plural", "leaks:foo", `bad.supp:1: unknown suppression type "leaks" (want "leak:PATTERN")`},
		{"case", "# c\nLeak:foo", `bad.supp:2: unknown suppression type "Leak" (types are case-sensitive: write "leak:")`},
		{"space before colon", "leak :foo", `bad.supp:1: unknown suppression type "leak " (want "leak:PATTERN")`},
		{"C++ name without type", "ns::func", `bad.supp:1: unknown suppression type "ns" (want "leak:PATTERN")`},
		{"empty pattern", "\n\nleak:\n", `bad.supp:3: empty pattern after "leak:" (LSan would suppress every leak; write "leak:*" to mean that)`},
		{"empty pattern after trimming", "leak: \t\r\n", `bad.supp:1: empty pattern after "leak:" (LSan would suppress every leak; write "leak:*" to mean that)`},
		{"NUL byte", "leak:a\x00b", `bad.supp:1: NUL byte in line`},
		{"first error wins", "x\ny\n", `bad.supp:1: not a suppression: want "leak:PATTERN", got "x"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set, _, err := Parse("bad.supp", strings.NewReader(c.in))
			if err == nil {
				t.Fatalf("no error; rules %q", patterns(set))
			}
			if err.Error() != c.want {
				t.Errorf("error %q\n want %q", err.Error(), c.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.File != "bad.supp" {
				t.Errorf("error %T is not a *ParseError for bad.supp", err)
			}
		})
	}
}

func TestParseRejectsHugeInput(t *testing.T) {
	_, _, err := Parse("/dev/zero", zeroReader{})
	if err == nil || err.Error() != "read suppressions /dev/zero: larger than 16 MiB, not a suppression file" {
		t.Errorf("error %v", err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	first := filepath.Join(dir, "first.supp")
	second := filepath.Join(dir, "second.supp")
	writeFile(t, first, "leak:a\nrace:x\n")
	writeFile(t, second, "leak:b\nleak:c\n")

	set, warnings, err := LoadFiles(first, second)
	if err != nil {
		t.Fatal(err)
	}
	if got := patterns(set); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("patterns %q", got)
	}
	if set.Rules[2].File != second || set.Rules[2].Line != 2 {
		t.Errorf("location %s:%d", set.Rules[2].File, set.Rules[2].Line)
	}
	if got := warningTexts(warnings); !slices.Equal(got, []string{first + `:2: "race:" rule is for ThreadSanitizer; skipped`}) {
		t.Errorf("warnings %q", got)
	}

	empty, _, err := LoadFiles()
	if err != nil || empty == nil || len(empty.Rules) != 0 {
		t.Errorf("LoadFiles() = %v, %v", empty, err)
	}

	missing := filepath.Join(dir, "missing.supp")
	if _, _, err := LoadFiles(first, missing); err == nil ||
		err.Error() != "read suppressions file: open "+missing+": no such file or directory" || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}

	bad := filepath.Join(dir, "bad.supp")
	writeFile(t, bad, "leak:ok\n\nfun:x\n")
	if _, _, err := LoadFiles(first, bad); err == nil || err.Error() != bad+`:3: unknown suppression type "fun" (want "leak:PATTERN")` {
		t.Errorf("bad file: %v", err)
	}
}
