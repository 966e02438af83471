package suppressions

import (
	"strings"
	"testing"

	"github.com/lsan-project/lsan/symbolize"
)

// FuzzParse checks that Parse never panics and that every rule it accepts
// round-trips: written back as its String() line and parsed again, it is
// the same single rule.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"leak:foo\n", "# c\n\nleak:^a*b$\r\n", "  \tleak: x \t\r\n", "race:x\nleak:ns::f\n",
		"leak:\n", "foo\n", "Leak:x", "leak:a\x00b", "\r\n\r\n", "leak:$\nleak:a^b\nleak:x$y",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		set, warnings, err := Parse("fuzz.supp", strings.NewReader(string(data)))
		if err != nil {
			if set != nil || warnings != nil {
				t.Fatalf("error %v with results", err)
			}
			if !strings.HasPrefix(err.Error(), "fuzz.supp:") {
				t.Fatalf("error %q does not start with the file name", err)
			}
			return
		}
		for _, r := range set.Rules {
			again, _, err := Parse("again.supp", strings.NewReader(r.String()))
			if err != nil {
				t.Fatalf("rule %q does not parse back: %v", r.String(), err)
			}
			if len(again.Rules) != 1 || again.Rules[0].Pattern != r.Pattern {
				t.Fatalf("rule %q parses back as %q", r.String(), patterns(again))
			}
		}
		set.Match([]symbolize.Frame{{Function: string(data), File: string(data), Module: string(data)}})
	})
}

// FuzzTemplateMatch checks that TemplateMatch never panics, that "*" and
// the empty template match exactly the non-empty strings, that a template
// without special characters is a substring test, and that Suggest's
// anchored template always matches the name it was made from.
func FuzzTemplateMatch(f *testing.F) {
	for _, seed := range [][2]string{
		{"foo$", "foo_foo"}, {"a*b$", "abab"}, {"^", ""}, {"$", "x"}, {"^a*", "a"}, {"**$$^^", "^$*"}, {"", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, template, s string) {
		TemplateMatch(template, s)
		if got := TemplateMatch("*", s); got != (s != "") {
			t.Fatalf(`TemplateMatch("*", %q) = %v`, s, got)
		}
		if got := TemplateMatch("", s); got != (s != "") {
			t.Fatalf(`TemplateMatch("", %q) = %v`, s, got)
		}
		if !strings.ContainsAny(template, "*$^") && s != "" {
			if got, want := TemplateMatch(template, s), strings.Contains(s, template); got != want {
				t.Fatalf("TemplateMatch(%q, %q) = %v, substring test says %v", template, s, got, want)
			}
		}
		if s != "" && !TemplateMatch(exactTemplate(s), s) {
			t.Fatalf("exactTemplate(%q) = %q does not match it", s, exactTemplate(s))
		}
	})
}

// FuzzParseLSanOptions checks that option parsing never panics and that
// accepted names never contain a separator or '='.
func FuzzParseLSanOptions(f *testing.F) {
	for _, seed := range []string{"suppressions=a.supp:exitcode=1", `a="b c",d='e'`, "x", `a="`, "=1", " :,"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		opts, err := ParseLSanOptions(s)
		if err != nil {
			return
		}
		for name := range opts {
			if strings.ContainsAny(name, "= ,:\t\n\r") {
				t.Fatalf("name %q from %q", name, s)
			}
		}
	})
}

// FuzzSuggest checks that a suggested rule always parses and matches the
// stack it was made for (SuggestFor reports an internal error otherwise).
func FuzzSuggest(f *testing.F) {
	f.Add("quokka_direct", "/srv/app", "/src/app.c", "xmalloc")
	f.Add("a*$b", "/lib/libfoo.so.1", "", "")
	f.Add("", "/opt/x.so", "", "main")
	f.Fuzz(func(t *testing.T, function, module, file, inner string) {
		stack := []symbolize.Frame{
			mallocFrame,
			{Function: inner, Module: module},
			{Function: function, Module: module, File: file},
			{Function: "main", Module: app},
		}
		s := SuggestFor(stack)
		if strings.HasPrefix(s.Reason, "internal error") {
			t.Fatal(s.Reason)
		}
		if (s.Rule == "") != (s.Frame < 0) {
			t.Fatalf("rule %q at frame %d", s.Rule, s.Frame)
		}
	})
}
