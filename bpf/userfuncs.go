package bpf

import (
	"fmt"
	"strconv"
	"strings"
)

// familyUser marks the functions the user named on the command line.
const familyUser = "user"

// FuncRole is what a user-named function does: the flag that named it.
type FuncRole string

const (
	RoleAlloc   FuncRole = "alloc"   // --alloc-fn NAME[:size_arg[,count_arg]]
	RoleFree    FuncRole = "free"    // --free-fn NAME[:ptr_arg]
	RoleRealloc FuncRole = "realloc" // --realloc-fn NAME[:ptr_arg,size_arg]
)

// maxArg is the last argument passed in a register (x86-64 and arm64
// both pass six or more); the probe reads no stack arguments.
const maxArg = 6

// ParseFunc reads one --alloc-fn, --free-fn or --realloc-fn value:
// [OBJECT:]NAME[:POSITIONS], where OBJECT restricts the lookup to one
// mapped object (a path or a file name such as libpool.so) and POSITIONS
// are the comma-separated argument positions of the role, counted from 1
// (default: size 1; ptr 1; ptr 1 and size 2). The function's result is
// the block (alloc, realloc); a realloc that returns NULL keeps the old
// block, as realloc does.
func ParseFunc(role FuncRole, spec string) (AllocatorFunc, error) {
	parts := strings.Split(spec, ":")
	var positions []uint8
	if last := parts[len(parts)-1]; len(parts) > 1 && isPositionList(last) {
		var err error
		if positions, err = parsePositions(last); err != nil {
			return AllocatorFunc{}, fmt.Errorf("%s: %w", spec, err)
		}
		parts = parts[:len(parts)-1]
	}
	fn := AllocatorFunc{Family: familyUser, Required: true}
	switch len(parts) {
	case 1:
		fn.Name = parts[0]
	case 2:
		fn.Object, fn.Name = parts[0], parts[1]
		if fn.Object == "" {
			return AllocatorFunc{}, fmt.Errorf("%s: empty object name before ':'", spec)
		}
	default:
		return AllocatorFunc{}, fmt.Errorf("%s: expected [OBJECT:]NAME[:POSITIONS]", spec)
	}
	if !isSymbolName(fn.Name) {
		return AllocatorFunc{}, fmt.Errorf("%s: %q is not a function name", spec, fn.Name)
	}
	sig, err := roleSignature(role, positions)
	if err != nil {
		return AllocatorFunc{}, fmt.Errorf("%s: %w", spec, err)
	}
	fn.sig = sig
	return fn, nil
}

// roleSignature builds a role's signature from the positions given (none:
// the defaults).
func roleSignature(role FuncRole, pos []uint8) (signature, error) {
	at := func(i int, def uint8) uint8 {
		if i < len(pos) {
			return pos[i]
		}
		return def
	}
	want := map[FuncRole]int{RoleAlloc: 2, RoleFree: 1, RoleRealloc: 2}[role]
	if want == 0 {
		return signature{}, fmt.Errorf("unknown role %q", role)
	}
	if len(pos) > want {
		return signature{}, fmt.Errorf("%s functions take at most %d argument position(s), got %d", role, want, len(pos))
	}
	switch role {
	case RoleAlloc:
		if len(pos) == 2 {
			return allocN(pos[1], pos[0]), nil
		}
		return alloc(at(0, 1)), nil
	case RoleFree:
		return free(at(0, 1)), nil
	default:
		ptr, size := at(0, 1), at(1, 2)
		if ptr == size {
			return signature{}, fmt.Errorf("the block and the size cannot be the same argument (%d)", ptr)
		}
		return realloc(ptr, size), nil
	}
}

func isPositionList(s string) bool {
	return s != "" && strings.Trim(s, "0123456789,") == ""
}

func parsePositions(s string) ([]uint8, error) {
	var out []uint8
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > maxArg {
			return nil, fmt.Errorf("argument position %q: positions count from 1 to %d", f, maxArg)
		}
		out = append(out, uint8(n))
	}
	return out, nil
}

// isSymbolName accepts C identifiers and mangled names (C++ and Rust use
// letters, digits, '_', '$' and '.').
func isSymbolName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, r := range s {
		ok := r == '_' || r == '$' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !ok {
			return false
		}
	}
	return true
}

// CheckFuncs refuses a function named twice by the user (one name binds
// one function).
func CheckFuncs(fs []AllocatorFunc) error {
	seen := map[string]bool{}
	for _, f := range fs {
		if seen[f.Name] {
			return fmt.Errorf("%s is named by more than one --alloc-fn/--free-fn/--realloc-fn", f.Name)
		}
		seen[f.Name] = true
	}
	return nil
}
