package suppressions

// leakType is the only suppression type lsan applies, as in LSan.
const leakType = "leak"

// otherSanitizerTypes maps the suppression types of the other sanitizers to
// the tool that reads them. Teams often keep one suppression file for
// several sanitizers; lsan skips these lines with a warning instead of
// failing, while any other unknown type is an error (most likely a typo that
// would silently suppress nothing). The lists come from compiler-rt's
// *_suppressions.cpp files and ubsan_checks.inc (UBSan's types are its
// -fsanitize check names), including names older releases used.
var otherSanitizerTypes = buildOtherSanitizerTypes()

func buildOtherSanitizerTypes() map[string]string {
	byTool := map[string][]string{
		"AddressSanitizer": {
			"interceptor_name", "interceptor_via_fun", "interceptor_via_lib",
			"odr_violation", "alloc_dealloc_mismatch",
		},
		"ThreadSanitizer": {
			"race", "race_top", "mutex", "thread", "signal",
			"called_from_lib", "deadlock",
		},
		"UndefinedBehaviorSanitizer": {
			"undefined", "null", "nullability-assign", "nullability-arg",
			"nullability-return", "pointer-overflow", "alignment",
			"object-size", "signed-integer-overflow",
			"unsigned-integer-overflow", "integer-divide-by-zero",
			"float-divide-by-zero", "fixed-point-divide-by-zero",
			"invalid-builtin-use", "invalid-objc-cast",
			"implicit-integer-truncation",
			"implicit-unsigned-integer-truncation",
			"implicit-signed-integer-truncation",
			"implicit-integer-sign-change",
			"implicit-signed-integer-truncation,implicit-integer-sign-change",
			"implicit-conversion", "shift-base", "shift-exponent", "bounds",
			"local-bounds", "unreachable", "return", "vla-bound",
			"float-cast-overflow", "bool", "enum", "function",
			"returns-nonnull-attribute", "nonnull-attribute", "vptr",
			"vptr_check", "cfi",
		},
		"NumericalStabilitySanitizer": {"fcmp", "consistency"},
		"RealtimeSanitizer":           {"call-stack-contains", "function-name-matches"},
	}
	m := map[string]string{}
	for tool, types := range byTool {
		for _, t := range types {
			m[t] = tool
		}
	}
	return m
}
