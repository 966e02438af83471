// Package suppressions reads LeakSanitizer suppression files and decides
// which leaks they hide, with LSan's exact semantics, so that the files a
// team already keeps for LSan work unchanged with lsan.
//
// # File format
//
// One rule per line, "leak:PATTERN". Spaces and tabs around a line and a
// trailing '\r' are ignored; blank lines and lines starting with '#' are
// skipped. Only the first ':' separates the type, so "leak:ns::func" works.
// Lines for other sanitizers ("race:", "interceptor_via_fun:", UBSan check
// names, …) are skipped with a Warning; any other line is an error
// (*ParseError, "FILE:LINE: REASON"), and so is "leak:" with an empty
// pattern. PATTERN is a TemplateMatch template.
//
// # Matching
//
// Set.Match tests a leak's allocation stack the way LSan does: frames from
// the innermost outward, per PC first the module path, then each (inlined)
// frame's function name and source file; for each of these strings the
// first rule in Set order that matches wins. Built-in rules come from
// Defaults. Set.Record, Set.Used and Set.ResetCounts keep the per-check
// counts behind LSan's "Suppressions used:" table.
//
// # API
//
//	func TemplateMatch(template, s string) bool
//	func Parse(name string, r io.Reader) (*Set, []Warning, error)
//	func LoadFiles(paths ...string) (*Set, []Warning, error)
//	func Defaults() *Set
//	func (s *Set) Merge(o *Set) *Set
//	func (s *Set) Match(stack []symbolize.Frame) *Rule
//	func (s *Set) Record(r *Rule, objects int, bytes uint64)
//	func (s *Set) Used() []*Rule
//	func (s *Set) ResetCounts()
//	func (r *Rule) String() string // "leak:PATTERN"
//	func ParseLSanOptions(s string) (map[string]string, error)
//	func ResolveSuppressionsPath(path, workDir, exe string) string
//	func Suggest(stack []symbolize.Frame) string
//	func SuggestFor(stack []symbolize.Frame) Suggestion
//
// A typical check: set := files.Merge(Defaults()); set.ResetCounts(); for
// each leak group, set.Record(set.Match(stack), objects, bytes); then report
// set.Used(). docs/suppressions.md is the user-facing description.
package suppressions
