package suppressions

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ParseLSanOptions parses an LSAN_OPTIONS value with the syntax of
// sanitizer_common's FlagParser, so that a value a team already exports for
// LSan means the same to lsan:
//
//   - flags are NAME=VALUE, separated by any run of spaces, tabs, newlines,
//     '\r', ',' or ':' (so "a=1:b=2", "a=1,b=2" and "a=1 b=2" are equal);
//   - a value starting with ' or " runs to the matching quote and may
//     contain separators; nothing needs to follow the closing quote;
//   - a later flag overrides an earlier one of the same name.
//
// Every flag is returned; which ones mean something is the caller's
// business (LSan itself only warns about unknown flags). "include" and
// "include_if_exists", which make LSan read more flags from a file, are
// returned as ordinary keys and not followed. A flag without '=' or an
// unterminated quote is an error, as it is fatal in LSan.
func ParseLSanOptions(s string) (map[string]string, error) {
	opts := map[string]string{}
	pos := 0
	for {
		pos = skipFlagSeparators(s, pos)
		if pos == len(s) {
			return opts, nil
		}
		name, value, next, err := parseFlag(s, pos)
		if err != nil {
			return nil, fmt.Errorf("LSAN_OPTIONS: %w", err)
		}
		opts[name] = value
		pos = next
	}
}

// parseFlag reads the NAME=VALUE that starts at pos and returns the
// position after it.
func parseFlag(s string, pos int) (name, value string, next int, err error) {
	end := pos
	for end < len(s) && s[end] != '=' && !isFlagSeparator(s[end]) {
		end++
	}
	name = s[pos:end]
	if end == len(s) || s[end] != '=' {
		return "", "", 0, fmt.Errorf("expected '=' after %q", name)
	}
	start := end + 1
	if start < len(s) && (s[start] == '\'' || s[start] == '"') {
		closing := strings.IndexByte(s[start+1:], s[start])
		if closing < 0 {
			return "", "", 0, fmt.Errorf("unterminated string in value of %q", name)
		}
		valueEnd := start + 1 + closing
		return name, s[start+1 : valueEnd], valueEnd + 1, nil
	}
	end = start
	for end < len(s) && !isFlagSeparator(s[end]) {
		end++
	}
	return name, s[start:end], end, nil
}

func skipFlagSeparators(s string, pos int) int {
	for pos < len(s) && isFlagSeparator(s[pos]) {
		pos++
	}
	return pos
}

// isFlagSeparator is FlagParser::is_space.
func isFlagSeparator(c byte) bool {
	switch c {
	case ' ', ',', ':', '\n', '\t', '\r':
		return true
	}
	return false
}

// ResolveSuppressionsPath returns the file LSan would read for
// LSAN_OPTIONS=suppressions=path. A relative path is taken from workDir
// (the target's working directory; "" for the current one). When that file
// does not exist, LSan retries the path relative to the directory of the
// executable, exe; that file is returned if it exists. Otherwise path is
// returned unchanged, so that the error on opening it names what the user
// wrote. An empty path stays empty (no suppressions).
func ResolveSuppressionsPath(path, workDir, exe string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	direct := path
	if workDir != "" {
		direct = filepath.Join(workDir, path)
	}
	if fileExists(direct) {
		return direct
	}
	if exe != "" {
		nextToExe := filepath.Join(filepath.Dir(exe), path)
		if fileExists(nextToExe) {
			return nextToExe
		}
	}
	return direct
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
