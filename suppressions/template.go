package suppressions

import "strings"

// TemplateMatch reports whether the suppression template matches s, with
// exactly the semantics of LeakSanitizer's TemplateMatch
// (compiler-rt/lib/sanitizer_common/sanitizer_common.cpp), so that a file
// suppresses the same leaks under lsan as under LSan:
//
//   - An empty s never matches, whatever the template.
//   - Without '*', '^' or '$' the template is a substring match; an empty
//     template (or "^" alone) matches every non-empty s.
//   - A leading '^' anchors the match at the start of s. Anywhere else '^'
//     is an ordinary character.
//   - '*' matches any run of characters, including none.
//   - '$' anchors at the end of s, and matching stops there: whatever
//     follows the first '$' is ignored ("foo$bar" behaves like "foo$"). A
//     '$' right after '*' always succeeds ("foo*$" behaves like "foo").
//   - The literal pieces between wildcards are found left to right at their
//     first occurrence, without backtracking. So "foo$" does not match
//     "foo_foo" (the first "foo" is not at the end) and "a*b$" does not match
//     "abab"; write "*_foo$" or "^foo_foo$" instead.
//
// There is no escape character: a literal '*' or '$' cannot be matched
// except through a wildcard.
func TemplateMatch(template, s string) bool {
	if s == "" {
		return false
	}
	anchored := strings.HasPrefix(template, "^")
	if anchored {
		template = template[1:]
	}
	afterStar := false
	for template != "" {
		switch template[0] {
		case '*':
			template = template[1:]
			anchored = false
			afterStar = true
			continue
		case '$':
			return s == "" || afterStar
		}
		if s == "" {
			return false
		}
		piece, rest := nextLiteral(template)
		at := strings.Index(s, piece)
		if at < 0 || (anchored && at != 0) {
			return false
		}
		s = s[at+len(piece):]
		template = rest
		anchored = false
		afterStar = false
	}
	return true
}

// nextLiteral splits a template that does not start with '*' or '$' into
// its leading literal piece and the rest, which starts at the next '*' or
// '$' (or is empty).
func nextLiteral(template string) (piece, rest string) {
	end := strings.IndexAny(template, "*$")
	if end < 0 {
		return template, ""
	}
	return template[:end], template[end:]
}
