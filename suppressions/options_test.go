package suppressions

import (
	"maps"
	"os"
	"path/filepath"
	"testing"
)

// The syntax cases were checked against LSan 14 here: ',' separates flags,
// quoted values need no separator after them, the last flag of a name
// wins, and a missing '=' or an unterminated quote is fatal.
func TestParseLSanOptions(t *testing.T) {
	cases := []struct {
		name, in string
		want     map[string]string
	}{
		{"empty", "", map[string]string{}},
		{"only separators", " :,\t\n\r", map[string]string{}},
		{"colons", "suppressions=lsan.supp:exitcode=7", map[string]string{"suppressions": "lsan.supp", "exitcode": "7"}},
		{"commas", "suppressions=s.supp,print_suppressions=0", map[string]string{"suppressions": "s.supp", "print_suppressions": "0"}},
		{"spaces and runs of separators", "  max_leaks=3 ,: report_objects=1\n", map[string]string{"max_leaks": "3", "report_objects": "1"}},
		{"single quotes", "suppressions='/a b/c:d.supp' exitcode=1", map[string]string{"suppressions": "/a b/c:d.supp", "exitcode": "1"}},
		{"double quotes", `suppressions="x.supp"print_suppressions=0`, map[string]string{"suppressions": "x.supp", "print_suppressions": "0"}},
		{"other quote inside", `a="it's"`, map[string]string{"a": "it's"}},
		{"empty values", `suppressions=:b="":c=''`, map[string]string{"suppressions": "", "b": "", "c": ""}},
		{"last wins", "suppressions=a.supp:suppressions=b.supp", map[string]string{"suppressions": "b.supp"}},
		{"equals in value", "a=b=c", map[string]string{"a": "b=c"}},
		{"empty name", "=1", map[string]string{"": "1"}},
		{"unknown flags kept", "verbosity=1:include=/etc/lsan.opts", map[string]string{"verbosity": "1", "include": "/etc/lsan.opts"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseLSanOptions(c.in)
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if !maps.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestParseLSanOptionsErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"suppressions=s.supp:foo", `LSAN_OPTIONS: expected '=' after "foo"`},
		{"foo bar=1", `LSAN_OPTIONS: expected '=' after "foo"`},
		{`suppressions="s.supp`, `LSAN_OPTIONS: unterminated string in value of "suppressions"`},
		{`a='x"`, `LSAN_OPTIONS: unterminated string in value of "a"`},
	}
	for _, c := range cases {
		got, err := ParseLSanOptions(c.in)
		if err == nil || err.Error() != c.want {
			t.Errorf("ParseLSanOptions(%q) = %v, %v; want error %q", c.in, got, err, c.want)
		}
	}
}

func TestResolveSuppressionsPath(t *testing.T) {
	root := t.TempDir()
	work := filepath.Join(root, "work")
	bin := filepath.Join(root, "bin")
	for _, d := range []string{work, bin} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(bin, "app")
	writeFile(t, filepath.Join(work, "both.supp"), "")
	writeFile(t, filepath.Join(bin, "both.supp"), "")
	writeFile(t, filepath.Join(bin, "exe_only.supp"), "")

	cases := []struct{ path, workDir, exe, want string }{
		{"", work, exe, ""},
		{"/abs/missing.supp", work, exe, "/abs/missing.supp"},
		{"both.supp", work, exe, filepath.Join(work, "both.supp")},        // the working directory first
		{"exe_only.supp", work, exe, filepath.Join(bin, "exe_only.supp")}, // then next to the executable
		{"missing.supp", work, exe, filepath.Join(work, "missing.supp")},  // neither: the error names the path
		{"exe_only.supp", work, "", filepath.Join(work, "exe_only.supp")}, // no executable known
		{"../bin/exe_only.supp", work, exe, filepath.Join(bin, "exe_only.supp")},
	}
	for _, c := range cases {
		if got := ResolveSuppressionsPath(c.path, c.workDir, c.exe); got != c.want {
			t.Errorf("ResolveSuppressionsPath(%q, %q, %q) = %q, want %q", c.path, c.workDir, c.exe, got, c.want)
		}
	}

	t.Chdir(work)
	if got := ResolveSuppressionsPath("both.supp", "", exe); got != "both.supp" {
		t.Errorf("relative to the current directory: %q", got)
	}
	if got := ResolveSuppressionsPath("exe_only.supp", "", exe); got != filepath.Join(bin, "exe_only.supp") {
		t.Errorf("next to the executable from the current directory: %q", got)
	}
}
