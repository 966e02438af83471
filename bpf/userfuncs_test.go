package bpf

import (
	"strings"
	"testing"
)

func TestParseFunc(t *testing.T) {
	for _, tc := range []struct {
		role FuncRole
		spec string
		want AllocatorFunc
		err  string
	}{
		{RoleAlloc, "pool_alloc", AllocatorFunc{Name: "pool_alloc", sig: alloc(1)}, ""},
		{RoleAlloc, "pool_alloc:2", AllocatorFunc{Name: "pool_alloc", sig: alloc(2)}, ""},
		{RoleAlloc, "arr_alloc:3,2", AllocatorFunc{Name: "arr_alloc", sig: allocN(2, 3)}, ""},
		{RoleAlloc, "libpool.so:pool_alloc:2", AllocatorFunc{Name: "pool_alloc", Object: "libpool.so", sig: alloc(2)}, ""},
		{RoleAlloc, "/opt/lib/libpool.so.1:pool_alloc", AllocatorFunc{Name: "pool_alloc", Object: "/opt/lib/libpool.so.1", sig: alloc(1)}, ""},
		{RoleFree, "pool_free:2", AllocatorFunc{Name: "pool_free", sig: free(2)}, ""},
		{RoleFree, "_ZN4Pool4freeEPv:2", AllocatorFunc{Name: "_ZN4Pool4freeEPv", sig: free(2)}, ""},
		{RoleRealloc, "pool_realloc", AllocatorFunc{Name: "pool_realloc", sig: realloc(1, 2)}, ""},
		{RoleRealloc, "pool_realloc:2,3", AllocatorFunc{Name: "pool_realloc", sig: realloc(2, 3)}, ""},
		{RoleAlloc, "pool_alloc:0", AllocatorFunc{}, `argument position "0": positions count from 1 to 6`},
		{RoleAlloc, "pool_alloc:7", AllocatorFunc{}, `argument position "7"`},
		{RoleAlloc, "pool_alloc:1,2,3", AllocatorFunc{}, "at most 2 argument position(s), got 3"},
		{RoleFree, "pool_free:1,2", AllocatorFunc{}, "at most 1 argument position(s)"},
		{RoleRealloc, "r:2,2", AllocatorFunc{}, "the block and the size cannot be the same argument"},
		{RoleAlloc, "a:b:c:1", AllocatorFunc{}, "expected [OBJECT:]NAME[:POSITIONS]"},
		{RoleAlloc, ":pool_alloc", AllocatorFunc{}, "empty object name"},
		{RoleAlloc, "", AllocatorFunc{}, "is not a function name"},
		{RoleAlloc, "pool alloc", AllocatorFunc{}, "is not a function name"},
		{RoleAlloc, "2fast", AllocatorFunc{}, "is not a function name"},
		{RoleAlloc, "pool_alloc:", AllocatorFunc{}, "is not a function name"},
	} {
		got, err := ParseFunc(tc.role, tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %q: error %v, want one containing %q", tc.role, tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %q: %v", tc.role, tc.spec, err)
			continue
		}
		tc.want.Family, tc.want.Required = familyUser, true
		if got != tc.want {
			t.Errorf("%s %q: %+v, want %+v", tc.role, tc.spec, got, tc.want)
		}
	}
}

func TestUserFuncReplacesDefault(t *testing.T) {
	fn, err := ParseFunc(RoleAlloc, "malloc:1")
	if err != nil {
		t.Fatal(err)
	}
	table := funcTable([]AllocatorFunc{fn})
	n := 0
	for _, f := range table {
		if f.Name == "malloc" {
			n++
		}
	}
	if n != 1 || table[len(table)-1].Family != familyUser {
		t.Errorf("malloc appears %d times, last entry %+v", n, table[len(table)-1])
	}
	if err := CheckFuncs([]AllocatorFunc{fn, fn}); err == nil {
		t.Error("a function named twice was accepted")
	}
}

// TestSignatureCookie pins the cookie layout lsan.h decodes.
func TestSignatureCookie(t *testing.T) {
	got := reallocN(2, 3, 4).withFlags(sigFreesOnFailure).cookie(0x1234)
	want := uint64(0x1234) | uint64(opRealloc)<<32 | 4<<36 | 3<<40 | 2<<44 | uint64(sigFreesOnFailure)<<48
	if got != want {
		t.Errorf("cookie %#x, want %#x", got, want)
	}
}

// TestDefaultTable: every default function has a known role, its argument
// positions fit the registers read, and no name appears twice (it would
// bind once and leave the second index unused).
func TestDefaultTable(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range AllocatorFuncs {
		if seen[f.Name] {
			t.Errorf("%s listed twice", f.Name)
		}
		seen[f.Name] = true
		if f.sig.args() > maxArg {
			t.Errorf("%s reads argument %d", f.Name, f.sig.args())
		}
		if f.sig.op == opRealloc && (f.sig.ptr == 0 || f.sig.ptr == f.sig.size) {
			t.Errorf("%s: realloc without a distinct block argument: %+v", f.Name, f.sig)
		}
		if f.sig.op == opFree && f.sig.ptr == 0 {
			t.Errorf("%s: free without a block argument", f.Name)
		}
	}
}

func FuzzParseFunc(f *testing.F) {
	for _, s := range []string{"pool_alloc:2", "libpool.so:pool_alloc:3,2", "a:b:c", "x:0", ":y", "z:1,2,3,4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		for _, role := range []FuncRole{RoleAlloc, RoleFree, RoleRealloc} {
			fn, err := ParseFunc(role, spec)
			if err != nil {
				continue
			}
			if !isSymbolName(fn.Name) || fn.sig.args() > maxArg || fn.sig.args() == 0 {
				t.Fatalf("%s %q: accepted %+v", role, spec, fn)
			}
		}
	})
}
