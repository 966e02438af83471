package symbolize

import (
	"strconv"
	"strings"
)

// demangleRustLegacy demangles a Rust legacy symbol
// (_ZN{len}{ident}...17h{16 hex}E) as rustc-demangle does, hash dropped.
// The general demangler strips a leading '_' from every identifier, a rule
// of v0 names, which turned std::...::__rust_begin_short_backtrace into
// _rust_begin_short_backtrace; here an identifier keeps its underscores,
// and only the "_$" escape prefix loses its '_'. ok is false for anything
// that is not a legacy Rust name (C++ names go to the general demangler).
func demangleRustLegacy(s string) (string, bool) {
	rest, ok := strings.CutPrefix(s, "_ZN")
	if !ok {
		return "", false
	}
	var parts []string
	for !strings.HasPrefix(rest, "E") {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil || n == 0 || len(rest)-i < n {
			return "", false
		}
		parts = append(parts, rest[i:i+n])
		rest = rest[i+n:]
	}
	rest = rest[1:]
	// Only a clone suffix (".llvm.123") may follow; C++ parameters may not.
	if rest != "" && !strings.HasPrefix(rest, ".") {
		return "", false
	}
	if len(parts) < 2 || !isRustHash(parts[len(parts)-1]) {
		return "", false
	}
	parts = parts[:len(parts)-1]
	for i, p := range parts {
		parts[i] = unescapeRustIdent(p)
	}
	return strings.Join(parts, "::"), true
}

// isRustHash: "h" and 16 hex digits, the crate hash legacy names end with.
func isRustHash(s string) bool {
	if len(s) != 17 || s[0] != 'h' {
		return false
	}
	for _, c := range s[1:] {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

var rustEscapes = map[string]string{
	"SP": "@", "BP": "*", "RF": "&", "LT": "<", "GT": ">", "LP": "(", "RP": ")", "C": ",",
}

// unescapeRustIdent undoes the legacy escapes: "$LT$" for '<', "$u7e$" for
// '~', ".." for "::"; a leading "_$" is an escape of '$' and loses its '_'.
func unescapeRustIdent(id string) string {
	if strings.HasPrefix(id, "_$") {
		id = id[1:]
	}
	var b strings.Builder
	for len(id) > 0 {
		switch {
		case id[0] == '$':
			end := strings.IndexByte(id[1:], '$')
			if end < 0 {
				b.WriteString(id)
				return b.String()
			}
			code := id[1 : 1+end]
			if r, ok := rustEscapes[code]; ok {
				b.WriteString(r)
			} else if v, err := strconv.ParseUint(strings.TrimPrefix(code, "u"), 16, 32); strings.HasPrefix(code, "u") && err == nil {
				b.WriteRune(rune(v))
			} else {
				b.WriteString(id[:end+2])
			}
			id = id[end+2:]
		case strings.HasPrefix(id, ".."):
			b.WriteString("::")
			id = id[2:]
		default:
			b.WriteByte(id[0])
			id = id[1:]
		}
	}
	return b.String()
}
