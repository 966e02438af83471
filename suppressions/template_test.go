package suppressions

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// templateCases are TemplateMatch's semantics. Every entry also runs through
// the real LSan 14 implementation in TestTemplateMatchAgainstLSan; the ones
// marked "LSan 14" were in addition observed end to end here, as
// suppression files applied to real leaks (see crosscheck_test.go).
var templateCases = []struct {
	template, s string
	want        bool
}{
	// Substring match without wildcards.
	{"quokka", "quokka_direct", true},           // LSan 14
	{"direct", "quokka_direct", true},           //
	{"okka_d", "quokka_direct", true},           //
	{"quokka_direct", "quokka", false},          //
	{"Quokka", "quokka_direct", false},          // case-sensitive
	{"other_file.c", "/src/other_file.c", true}, // LSan 14 (file)
	{"ns::func", "ns::func()", true},            // LSan 14
	// The empty subject never matches, whatever the template.
	{"", "", false},
	{"*", "", false},
	{"^", "", false},
	{"$", "", false},
	{"^$", "", false},
	{"*$", "", false},
	// An empty template, "^" or "*" alone matches any non-empty subject.
	{"", "x", true},
	{"^", "x", true},
	{"*", "x", true},  // LSan 14: leak:* hides everything
	{"**", "x", true}, //
	{"^*", "x", true}, //
	{"*$", "x", true}, // '$' right after '*' always succeeds
	{"^*$", "anything", true},
	// '^' anchors the start, only as the first character.
	{"^quokka", "quokka_direct", true},            // LSan 14
	{"^okka", "quokka_direct", false},             // LSan 14
	{"^other_file.c", "/src/other_file.c", false}, // LSan 14: files are full paths
	{"^^a", "^a", true},                           // the second '^' is literal
	{"^^a", "a", false},                           //
	{"a^b", "xa^by", true},                        // literal in the middle
	{"a^b", "ab", false},                          //
	{"*^a", "x^a", true},                          // literal after '*'
	// '$' anchors the end.
	{"direct$", "quokka_direct", true},             //
	{"^quokka_direct$", "quokka_direct", true},     // LSan 14
	{"^quokka_direct$", "quokka_direct2", false},   //
	{"*/other_file.c$", "/src/other_file.c", true}, // LSan 14
	{"$", "x", false},                              // never matches
	{"^$", "x", false},                             //
	{"$abc", "abc", false},                         //
	// Matching stops at the first '$': what follows is ignored.
	{"foo$bar", "xfoo", true},         //
	{"foo$bar", "foobar", false},      //
	{"dollar$fn", "dollar$fn", false}, // LSan 14: a literal '$' cannot be matched
	{"dollar*fn", "dollar$fn", true},  // LSan 14
	{"a$$", "a", true},                //
	// Pieces are found at their first occurrence, without backtracking.
	{"foo$", "foo_foo", false},   // LSan 14: the first "foo" is not at the end
	{"*oo$", "foo_foo", false},   // LSan 14
	{"oo_foo$", "foo_foo", true}, // LSan 14
	{"a*b$", "abab", false},      // LSan 14
	{"^ab*ab$", "abab", true},    // LSan 14
	{"b$", "abab", false},        // the first "b" is at 1
	{"ab$", "abab", false},       // first "ab" is at 0
	// '*' in the middle and at the ends.
	{"a*c", "abc", true},
	{"a*c", "ac", true},
	{"a*c", "ca", false},
	{"*a*", "bab", true},
	{"^a*c$", "abbc", true},
	{"^a*c$", "abbcd", false},
	{"a**c", "abc", true},
	{"quokka*direct", "quokka_direct", true},
	{"dir*quokka", "quokka_direct", false}, // order matters
	{"^*direct", "quokka_direct", true},    // '*' lifts the '^' anchor
	// The template may be longer than the subject.
	{"quokka_direct_and_more", "quokka", false},
	{"^a*bc", "a", false},
	{"a*", "a", true},
	{"a*b", "a", false},
	// Spaces and other characters are literal.
	{" abab", "abab", false}, // LSan 14: leak: abab keeps the space
	{"operator new(", "operator new(unsigned long)", true},
	{"<unknown module>", "<unknown module>", true},
}

func TestTemplateMatch(t *testing.T) {
	for _, c := range templateCases {
		if got := TemplateMatch(c.template, c.s); got != c.want {
			t.Errorf("TemplateMatch(%q, %q) = %v, want %v", c.template, c.s, got, c.want)
		}
	}
}

// TestTemplateMatchAgainstLSan compares TemplateMatch with the function in
// the installed LSan runtime (__sanitizer::TemplateMatch, called from a
// small C++ program), over the table above and every template of up to 5
// characters from {a, b, *, $, ^} against a set of subjects.
func TestTemplateMatchAgainstLSan(t *testing.T) {
	tc := needLSan(t)
	oracle := tc.buildTemplateOracle(t)

	type pair struct{ template, s string }
	var pairs []pair
	for _, c := range templateCases {
		pairs = append(pairs, pair{c.template, c.s})
	}
	subjects := append(allStrings("ab", 4), "^", "$", "*", "a$", "$a", "^a", "a^", "a*b", "ab$ab")
	for _, tmpl := range allStrings("ab*$^", 5) {
		for _, s := range subjects {
			pairs = append(pairs, pair{tmpl, s})
		}
	}

	var input strings.Builder
	for _, p := range pairs {
		fmt.Fprintf(&input, "%s\n%s\n", p.template, p.s)
	}
	cmd := exec.Command(oracle)
	cmd.Stdin = strings.NewReader(input.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("run LSan TemplateMatch oracle: %v", err)
	}
	answers := strings.Fields(string(out))
	if len(answers) != len(pairs) {
		t.Fatalf("oracle answered %d of %d pairs", len(answers), len(pairs))
	}
	mismatches := 0
	for i, p := range pairs {
		lsan := answers[i] == "1"
		if got := TemplateMatch(p.template, p.s); got != lsan {
			mismatches++
			if mismatches <= 20 {
				t.Errorf("TemplateMatch(%q, %q) = %v, LSan says %v", p.template, p.s, got, lsan)
			}
		}
	}
	t.Logf("compared %d template/subject pairs with LSan's TemplateMatch; %d differ", len(pairs), mismatches)
}

// allStrings lists every string of length 0..maxLen over alphabet.
func allStrings(alphabet string, maxLen int) []string {
	all := []string{""}
	level := []string{""}
	for n := 1; n <= maxLen; n++ {
		var next []string
		for _, prefix := range level {
			for _, c := range alphabet {
				next = append(next, prefix+string(c))
			}
		}
		all = append(all, next...)
		level = next
	}
	return all
}

// templateOracleSource calls LSan's own TemplateMatch for each pair of
// input lines (template, subject) and prints 1 or 0. The function is not
// part of LSan's public interface, but it is an external symbol of the
// runtime that -fsanitize=leak links in.
const templateOracleSource = `
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
namespace __sanitizer { bool TemplateMatch(const char *templ, const char *str); }
int main() {
  std::string templ, subject;
  while (std::getline(std::cin, templ) && std::getline(std::cin, subject)) {
    char *writable = strdup(templ.c_str()); // LSan's TemplateMatch writes into it
    std::printf("%d\n", __sanitizer::TemplateMatch(writable, subject.c_str()) ? 1 : 0);
    std::free(writable);
  }
  return 0;
}
`

func (tc *lsanToolchain) buildTemplateOracle(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "oracle.cpp")
	writeFile(t, src, templateOracleSource)
	bin := filepath.Join(dir, "oracle")
	tc.run(t, dir, tc.cxx, "-fsanitize=leak", "-O1", src, "-o", bin)
	return bin
}
