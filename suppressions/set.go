package suppressions

import (
	"github.com/lsan-project/lsan/symbolize"
)

// unknownModule is what LSan matches module patterns against when a PC lies
// in no known module, so "leak:unknown" hides such frames in both tools.
const unknownModule = "<unknown module>"

// ruleKind tells how a rule is tested against a stack.
type ruleKind int

const (
	// templateRule is a "leak:PATTERN" line: its pattern is matched with
	// TemplateMatch against module, function and file of every frame.
	templateRule ruleKind = iota
	// dynamicLinkerCallerRule is a built-in rule (see Defaults) that
	// matches when the allocation's call site is inside the dynamic linker.
	dynamicLinkerCallerRule
)

// Rule is one suppression and what it hid in the current check.
type Rule struct {
	// Pattern is the template after "leak:", exactly as written (LSan
	// prints it in its "Suppressions used:" table). For the built-in
	// dynamic-linker rule it is a description in angle brackets.
	Pattern string
	// File and Line locate the rule; File is "<built-in>" for Defaults.
	File string
	Line int
	// Default is set for the built-in rules of Defaults.
	Default bool
	// Hits counts the objects (blocks) the rule hid in this check and
	// Bytes their size, as LSan's table shows them; see Set.Record.
	Hits  int
	Bytes uint64

	kind ruleKind
}

// String is the rule as a suppression-file line ("leak:PATTERN"); a
// built-in rule that has no such form returns its description.
func (r *Rule) String() string {
	if r.kind != templateRule {
		return r.Pattern
	}
	return leakType + ":" + r.Pattern
}

// Set is an ordered list of rules. Order matters: at each point of a stack
// the first rule in the list that matches wins (see Match). A Set is not
// safe for concurrent use; all methods accept a nil *Set.
type Set struct {
	Rules []*Rule
}

// Merge returns a new Set holding copies of s's rules followed by o's, so
// s's rules win ties. Neither input is modified.
func (s *Set) Merge(o *Set) *Set {
	merged := &Set{}
	for _, from := range []*Set{s, o} {
		if from == nil {
			continue
		}
		for _, r := range from.Rules {
			c := *r
			merged.Rules = append(merged.Rules, &c)
		}
	}
	return merged
}

// Match returns the rule that suppresses a leak allocated at stack
// (innermost frame first, inlined frames expanded), or nil. It follows
// LSan's LeakSuppressionContext:
//
//  1. A built-in dynamic-linker rule applies first, to the allocation's
//     call site only (LSan's use_ld_allocations check runs before any rule).
//  2. Then the frames are walked from the innermost outward, one PC at a
//     time (a PC's inlined frames and the frame they were inlined into form
//     one step). At each PC the module path is tried first ("<unknown
//     module>" when unknown), then each of its frames innermost first: the
//     function name, then the source file. For each of these strings the
//     rules are tried in Set order and the first that matches wins.
//
// So a rule that matches an inner frame beats an earlier rule that matches
// only an outer frame, and at one PC a module rule beats a function rule.
func (s *Set) Match(stack []symbolize.Frame) *Rule {
	if s == nil || len(s.Rules) == 0 || len(stack) == 0 {
		return nil
	}
	if r := s.matchCallSite(stack); r != nil {
		return r
	}
	for _, pc := range splitByPC(stack) {
		if r := s.matchPC(pc); r != nil {
			return r
		}
	}
	return nil
}

// matchPC tries one PC's module, then each of its frames' function and file.
func (s *Set) matchPC(frames []symbolize.Frame) *Rule {
	if r := s.firstTemplateMatch(moduleOf(frames)); r != nil {
		return r
	}
	for _, f := range frames {
		if r := s.firstTemplateMatch(f.Function); r != nil {
			return r
		}
		if r := s.firstTemplateMatch(f.File); r != nil {
			return r
		}
	}
	return nil
}

// firstTemplateMatch is LSan's SuppressionContext::Match: the first
// "leak:" rule, in order, whose template matches subject.
func (s *Set) firstTemplateMatch(subject string) *Rule {
	if subject == "" {
		return nil
	}
	for _, r := range s.Rules {
		if r.kind == templateRule && TemplateMatch(r.Pattern, subject) {
			return r
		}
	}
	return nil
}

// matchCallSite applies the rules that look only at the allocation's call
// site: the first PC that is not the allocator itself.
func (s *Set) matchCallSite(stack []symbolize.Frame) *Rule {
	var site []symbolize.Frame
	for _, r := range s.Rules {
		if r.kind != dynamicLinkerCallerRule {
			continue
		}
		if site == nil {
			site = callSite(stack)
		}
		if len(site) > 0 && isDynamicLinker(moduleOf(site)) {
			return r
		}
	}
	return nil
}

// Record adds objects and bytes to r's counts; r must come from s.Match.
// A nil r is ignored, so Record(s.Match(stack), n, b) needs no check.
func (s *Set) Record(r *Rule, objects int, bytes uint64) {
	if r == nil {
		return
	}
	r.Hits += objects
	r.Bytes += bytes
}

// Used returns the rules that hid something since the last ResetCounts, in
// Set order, which is the order of LSan's "Suppressions used:" table.
func (s *Set) Used() []*Rule {
	if s == nil {
		return nil
	}
	var used []*Rule
	for _, r := range s.Rules {
		if r.Hits > 0 {
			used = append(used, r)
		}
	}
	return used
}

// ResetCounts zeroes every rule's counts; call it at the start of a check.
// (LSan never resets: its process checks once. lsan checks repeatedly and
// reports each check on its own.)
func (s *Set) ResetCounts() {
	if s == nil {
		return
	}
	for _, r := range s.Rules {
		r.Hits, r.Bytes = 0, 0
	}
}

// splitByPC cuts a symbolized stack into the frames of each PC: a PC's
// inlined frames (Inlined set) followed by the frame they were inlined into.
// A trailing run of inlined frames without their container is still one PC.
func splitByPC(stack []symbolize.Frame) [][]symbolize.Frame {
	var pcs [][]symbolize.Frame
	start := 0
	for i, f := range stack {
		if !f.Inlined || i == len(stack)-1 {
			pcs = append(pcs, stack[start:i+1])
			start = i + 1
		}
	}
	return pcs
}

// moduleOf is the module path of one PC's frames, as LSan matches it.
func moduleOf(frames []symbolize.Frame) string {
	for _, f := range frames {
		if f.Module != "" {
			return f.Module
		}
	}
	return unknownModule
}
