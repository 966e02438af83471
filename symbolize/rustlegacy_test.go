package symbolize

import "testing"

func TestDemangleRustLegacy(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"_ZN3std10sys_common9backtrace28__rust_begin_short_backtrace17h0123456789abcdefE", "std::sys_common::backtrace::__rust_begin_short_backtrace"},
		{"_ZN3std2rt10lang_start17h0123456789abcdefE", "std::rt::lang_start"},
		{"_ZN4core3ptr85drop_in_place$LT$std..rt..lang_start$LT$$LP$$RP$$GT$..$u7b$$u7b$closure$u7d$$u7d$$GT$17h0123456789abcdefE",
			"core::ptr::drop_in_place<std::rt::lang_start<()>::{{closure}}>"},
		{"_ZN5alloc5alloc10_$LT$T$GT$3foo17h0123456789abcdefE.llvm.42", "alloc::alloc::<T>::foo"},
		{"__rust_begin_short_backtrace", "__rust_begin_short_backtrace"},
		{"__rust_alloc", "__rust_alloc"},
		{"_ZN3foo3barEv", "foo::bar()"}, // C++: not Rust, the general demangler
	} {
		if got := demangleName(tc.in); got != tc.want {
			t.Errorf("demangleName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzDemangleRustLegacy(f *testing.F) {
	f.Add("_ZN3std2rt10lang_start17h0123456789abcdefE")
	f.Add("_ZN1a3$u7e$17h0123456789abcdefE")
	f.Fuzz(func(t *testing.T, s string) {
		demangleRustLegacy(s) // must not panic
	})
}
