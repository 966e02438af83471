package suppressions

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/lsan-project/lsan/symbolize"
)

// Suggestion is a rule proposed for one reported leak group.
type Suggestion struct {
	// Rule is ready to paste into a suppression file, e.g.
	// "leak:^quokka_direct$"; "" when no rule would be narrow enough.
	Rule string
	// Frame is the index in the stack of the frame the rule names, -1
	// when Rule is "".
	Frame int
	// Reason says why this frame was chosen, or why there is no rule.
	Reason string
}

// Suggest returns a ready-to-paste rule that suppresses a leak allocated at
// stack, or "" when no rule would be narrow enough. See SuggestFor.
func Suggest(stack []symbolize.Frame) string {
	return SuggestFor(stack).Rule
}

// SuggestFor proposes a rule for a leak allocated at stack (innermost frame
// first, as Match takes it) and says why:
//
//  1. It skips the allocator and runtime frames: allocation entry points,
//     the C library, the dynamic linker, the C++ runtime, libgcc, replacement
//     allocators and sanitizer runtimes, and std:: code instantiated in the
//     program. The first remaining frame is the program's own call site.
//  2. If that frame looks like an allocation wrapper of the program
//     (xmalloc, g_malloc0, zmalloc, xstrdup, pool_alloc, …) and an own frame
//     further out exists, it prefers that one: a rule naming a wrapper would
//     hide every leak allocated through it. It names the wrapper after all
//     when its caller cannot be named (main, say).
//  3. A frame with a function name gives "leak:^NAME$": anchored at both
//     ends, so that it names that function only. Templates have no escape
//     character, so a '*' or '$' inside the name becomes a '*' wildcard.
//     Without a function name the source file is used the same way, and
//     without either the basename of a shared library ("leak:libfoo.so.1").
//  4. There is no rule when the call site is unknown, is main or another
//     function at the bottom of every stack, or lies in an executable
//     without symbols: such a rule would hide every leak of the program.
//
// Keep in mind that a rule matches any frame of a stack, not just the call
// site: "leak:^parse_config$" also hides leaks of functions parse_config
// calls. The returned rule always matches stack (it is checked).
func SuggestFor(stack []symbolize.Frame) Suggestion {
	candidates, why := candidateFrames(stack)
	if len(candidates) == 0 {
		return Suggestion{Frame: -1, Reason: why}
	}
	var firstRefusal string
	for _, c := range candidates {
		rule, reason := ruleForFrame(stack[c.index])
		if rule == "" {
			if firstRefusal == "" {
				firstRefusal = reason
			}
			continue
		}
		if !suggestionMatches(rule, stack) {
			return Suggestion{Frame: -1, Reason: fmt.Sprintf("internal error: %s does not match the stack", rule)}
		}
		return Suggestion{Rule: rule, Frame: c.index, Reason: c.why + "; " + reason}
	}
	return Suggestion{Frame: -1, Reason: firstRefusal}
}

// candidate is a frame a suggestion may name, and why.
type candidate struct {
	index int
	why   string
}

// candidateFrames returns the frames a suggestion may name, best first
// (steps 1 and 2 of SuggestFor): the first own frame that is not an
// allocation wrapper, then the wrapper itself, whose rule is broader but
// better than none when its caller is main. Without candidates it says why.
func candidateFrames(stack []symbolize.Frame) ([]candidate, string) {
	wrapper := -1
	for i, f := range stack {
		if isRuntimeFrame(f) {
			continue
		}
		if f.Function == "" && f.File == "" && f.Module == "" {
			break
		}
		if wrapper < 0 && looksLikeAllocWrapper(f.Function) {
			wrapper = i
			continue
		}
		if wrapper >= 0 {
			return []candidate{
				{i, fmt.Sprintf("frame #%d calls the allocation wrapper %s", i, stack[wrapper].Function)},
				{wrapper, fmt.Sprintf("frame #%d is the allocation wrapper %s", wrapper, stack[wrapper].Function)},
			}, ""
		}
		return []candidate{{i, fmt.Sprintf("frame #%d is the first outside the allocator and runtime libraries", i)}}, ""
	}
	if wrapper >= 0 {
		return []candidate{{wrapper, fmt.Sprintf("frame #%d is the first outside the allocator and runtime libraries", wrapper)}}, ""
	}
	for i, f := range stack {
		if !isRuntimeFrame(f) {
			return nil, fmt.Sprintf("frame #%d, the first outside the allocator and runtime libraries, is not symbolized", i)
		}
	}
	return nil, "every frame belongs to the allocator or a runtime library"
}

// ruleForFrame writes the rule naming f (steps 3 and 4 of SuggestFor).
func ruleForFrame(f symbolize.Frame) (rule, reason string) {
	switch {
	case entryPoints[baseName(f.Function)] && !strings.Contains(f.Function, "::"):
		return "", fmt.Sprintf("the leak is allocated directly in %s, which is on every stack; a rule naming it would hide every leak", f.Function)
	case f.Function != "" && expressible(f.Function):
		return leakType + ":" + exactTemplate(f.Function), "it names the function"
	case f.File != "" && expressible(f.File):
		return leakType + ":" + exactTemplate(f.File), "the frame has no usable function name, so it names the source file"
	case isSharedObject(f.Module):
		return leakType + ":" + substringTemplate(filepath.Base(f.Module)), "the frame has no function name or source file, so it names the library"
	default:
		return "", fmt.Sprintf("the call site in %s has no usable symbols; a rule naming the executable would hide every leak", f.Module)
	}
}

// exactTemplate returns a template that matches exactly name, or, when name
// holds characters a template cannot express, as little more as it can.
// Anchoring at both ends is reliable despite TemplateMatch's lack of
// backtracking: with '^' the first piece must be at the start, and each
// following piece is then first found right after the wildcard that stands
// for the inexpressible character before it.
func exactTemplate(name string) string {
	return "^" + substringTemplate(name) + "$"
}

// substringTemplate turns every run of characters that a template cannot
// hold literally ('*' and '$', line breaks and NUL, which would end or split
// the line) into one '*'.
func substringTemplate(text string) string {
	var b strings.Builder
	wild := false
	for i := 0; i < len(text); i++ {
		switch c := text[i]; c {
		case '*', '$', '\n', '\r', 0:
			if !wild {
				b.WriteByte('*')
			}
			wild = true
		default:
			b.WriteByte(c)
			wild = false
		}
	}
	return b.String()
}

// expressible reports whether a template for text keeps some literal
// character: text made only of '*', '$' and line breaks would turn into a
// rule that matches everything.
func expressible(text string) bool {
	return strings.Trim(substringTemplate(text), "*") != ""
}

// isSharedObject reports whether module looks like a shared library rather
// than an executable: "libfoo.so", "libfoo.so.1.2", "plugin.so".
func isSharedObject(module string) bool {
	base := filepath.Base(module)
	return strings.HasSuffix(base, ".so") || strings.Contains(base, ".so.")
}

// suggestionMatches checks a suggested rule the way a user will use it:
// parsed from a file and matched against the stack.
func suggestionMatches(rule string, stack []symbolize.Frame) bool {
	set, _, err := Parse("suggestion", strings.NewReader(rule))
	if err != nil || len(set.Rules) != 1 {
		return false
	}
	return set.Match(stack) != nil
}
