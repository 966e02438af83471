package suppressions

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxFileSize bounds what Parse reads, so that a mistaken path such as
// /dev/zero fails instead of exhausting memory. Real suppression files are
// a few kilobytes.
const maxFileSize = 16 << 20

// ParseError is a malformed line in a suppression file. Its text is
// "FILE:LINE: REASON".
type ParseError struct {
	File   string
	Line   int
	Reason string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
}

// Warning is a line that was accepted or skipped but deserves a look: a rule
// for another sanitizer, or a pattern that will not do what it seems to.
type Warning struct {
	File string
	Line int
	Msg  string
}

func (w Warning) String() string {
	return fmt.Sprintf("%s:%d: %s", w.File, w.Line, w.Msg)
}

// Parse reads a suppression file in LeakSanitizer's format. name is used in
// errors and warnings and recorded in each Rule. The first malformed line
// stops parsing with a *ParseError; lines for other sanitizers are skipped
// with a Warning.
func Parse(name string, r io.Reader) (*Set, []Warning, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read suppressions %s: %w", name, err)
	}
	if len(data) > maxFileSize {
		return nil, nil, fmt.Errorf("read suppressions %s: larger than %d MiB, not a suppression file", name, maxFileSize>>20)
	}
	p := parser{file: name, set: &Set{}}
	for i, line := range strings.Split(string(data), "\n") {
		if err := p.parseLine(i+1, line); err != nil {
			return nil, nil, err
		}
	}
	return p.set, p.warnings, nil
}

// LoadFiles parses the files in order and concatenates their rules, so a
// rule from an earlier file wins over one from a later file when both match
// at the same point of a stack. Without paths it returns an empty Set.
func LoadFiles(paths ...string) (*Set, []Warning, error) {
	all := &Set{}
	var warnings []Warning
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("read suppressions file: %w", err)
		}
		set, w, err := Parse(path, bytes.NewReader(data))
		if err != nil {
			return nil, nil, err
		}
		all.Rules = append(all.Rules, set.Rules...)
		warnings = append(warnings, w...)
	}
	return all, warnings, nil
}

type parser struct {
	file     string
	set      *Set
	warnings []Warning
}

// parseLine handles one line the way LSan's SuppressionContext::Parse does:
// spaces and tabs are trimmed at the start, spaces, tabs and '\r' at the end,
// and empty lines and '#' comments are skipped. Unlike LSan, a line holding
// only "\r" (a blank line of a CRLF file) is blank rather than fatal.
func (p *parser) parseLine(n int, raw string) error {
	line := strings.TrimRight(strings.TrimLeft(raw, " \t"), " \t\r")
	if line == "" || line[0] == '#' {
		return nil
	}
	if strings.IndexByte(line, 0) >= 0 {
		return p.errorf(n, "NUL byte in line")
	}
	typ, pattern, ok := strings.Cut(line, ":")
	if !ok {
		return p.errorf(n, "not a suppression: want %q, got %q", "leak:PATTERN", line)
	}
	if typ != leakType {
		return p.otherType(n, typ)
	}
	if pattern == "" {
		return p.errorf(n, "empty pattern after %q (LSan would suppress every leak; write %q to mean that)", "leak:", "leak:*")
	}
	p.warnAboutPattern(n, pattern)
	p.set.Rules = append(p.set.Rules, &Rule{Pattern: pattern, File: p.file, Line: n})
	return nil
}

// otherType skips the rules of other sanitizers with a warning and rejects
// every other type.
func (p *parser) otherType(n int, typ string) error {
	if tool, ok := otherSanitizerTypes[typ]; ok {
		p.warnf(n, "%q rule is for %s; skipped", typ+":", tool)
		return nil
	}
	if strings.EqualFold(typ, leakType) {
		return p.errorf(n, "unknown suppression type %q (types are case-sensitive: write %q)", typ, "leak:")
	}
	return p.errorf(n, "unknown suppression type %q (want %q)", typ, "leak:PATTERN")
}

// warnAboutPattern points out patterns that LSan accepts but that almost
// certainly do not do what their author meant. The rule is kept unchanged,
// so lsan still suppresses exactly what LSan would.
func (p *parser) warnAboutPattern(n int, pattern string) {
	body := strings.TrimPrefix(pattern, "^")
	switch {
	case pattern[0] == ' ' || pattern[0] == '\t':
		p.warnf(n, "pattern %q starts with white space, which is part of the pattern (as in LSan)", pattern)
	case strings.HasPrefix(body, "$"):
		p.warnf(n, "pattern %q never matches anything: '$' anchors the end before any text", pattern)
	}
	if i := strings.IndexByte(body, '$'); i >= 0 && i < len(body)-1 {
		p.warnf(n, "pattern %q: matching stops at the first '$', so %q after it is ignored (as in LSan)", pattern, body[i+1:])
	}
	if strings.IndexByte(body, '^') >= 0 {
		p.warnf(n, "pattern %q: '^' anchors only at the start of a pattern; elsewhere it is a literal '^'", pattern)
	}
}

func (p *parser) errorf(n int, format string, args ...any) error {
	return &ParseError{File: p.file, Line: n, Reason: fmt.Sprintf(format, args...)}
}

func (p *parser) warnf(n int, format string, args ...any) {
	p.warnings = append(p.warnings, Warning{File: p.file, Line: n, Msg: fmt.Sprintf(format, args...)})
}
