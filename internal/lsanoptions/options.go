// Package lsanoptions reads LSAN_OPTIONS as LeakSanitizer does and turns
// the flags that mean something to lsan into typed values, so that a CI
// script written for a -fsanitize=leak build works unchanged under lsan.
//
//	opts, warnings, err := lsanoptions.Parse(os.Getenv("LSAN_OPTIONS"))
//
// A flag lsan honours with a bad value is an error naming the key (a
// usage error); a flag no sanitizer knows is a warning; the sanitizer flags
// that only make sense inside an instrumented process (fast_unwind_on_malloc,
// allocator_may_return_null, …) are accepted and ignored.
package lsanoptions

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lsan-project/lsan/suppressions"
)

// Options are the LSAN_OPTIONS flags lsan honours. Unset flags keep LSan's
// defaults.
type Options struct {
	// DetectLeaks=false (detect_leaks=0): no check at all; lsan run runs
	// the command untraced and exits with its status.
	DetectLeaks bool
	// LeakCheckAtExit=false (leak_check_at_exit=0): no check when the
	// command exits (lsan run) or when lsan is interrupted (lsan -p).
	LeakCheckAtExit bool
	// The root set: use_stacks, use_registers, use_globals, use_tls,
	// use_root_regions, and use_unaligned (pointers at any byte offset).
	UseStacks, UseRegisters, UseGlobals, UseTLS, UseRootRegions, UseUnaligned bool
	// ReportObjects lists every leaked block's address (report_objects).
	ReportObjects bool
	// PrintSuppressions=false hides the "Suppressions used" table.
	PrintSuppressions bool
	// MaxLeaks keeps the N largest groups (max_leaks; 0: all).
	MaxLeaks int
	// ExitCode is the status when leaks are found (exitcode), if set.
	ExitCode *int
	// LogPath writes reports to LogPath.PID instead of stdout (log_path;
	// "stdout" and "stderr" name those streams).
	LogPath string
	// Suppressions is a suppression file (suppressions).
	Suppressions string
	// set records which flags were given.
	set map[string]bool
}

// IsSet tells whether the flag name was given.
func (o Options) IsSet(name string) bool { return o.set[name] }

// Defaults are LSan's defaults.
func Defaults() Options {
	return Options{
		DetectLeaks: true, LeakCheckAtExit: true,
		UseStacks: true, UseRegisters: true, UseGlobals: true, UseTLS: true, UseRootRegions: true,
		PrintSuppressions: true,
		set:               map[string]bool{},
	}
}

// Parse reads an LSAN_OPTIONS value.
func Parse(s string) (Options, []string, error) {
	o := Defaults()
	flags, err := suppressions.ParseLSanOptions(s)
	if err != nil {
		return o, nil, err
	}
	var warnings []string
	for _, name := range sortedKeys(flags) {
		value := flags[name]
		o.set[name] = true
		if err := o.apply(name, value); err != nil {
			return o, nil, fmt.Errorf("LSAN_OPTIONS: %s=%s: %w", name, value, err)
		}
		if _, ok := bools[name]; ok {
			continue
		}
		if !handled[name] && !ignored[name] {
			warnings = append(warnings, fmt.Sprintf("LSAN_OPTIONS: unknown flag %q ignored", name))
		}
	}
	return o, warnings, nil
}

// bools are the boolean flags, by name.
var bools = map[string]func(*Options) *bool{
	"detect_leaks":       func(o *Options) *bool { return &o.DetectLeaks },
	"leak_check_at_exit": func(o *Options) *bool { return &o.LeakCheckAtExit },
	"use_stacks":         func(o *Options) *bool { return &o.UseStacks },
	"use_registers":      func(o *Options) *bool { return &o.UseRegisters },
	"use_globals":        func(o *Options) *bool { return &o.UseGlobals },
	"use_tls":            func(o *Options) *bool { return &o.UseTLS },
	"use_root_regions":   func(o *Options) *bool { return &o.UseRootRegions },
	"use_unaligned":      func(o *Options) *bool { return &o.UseUnaligned },
	"report_objects":     func(o *Options) *bool { return &o.ReportObjects },
	"print_suppressions": func(o *Options) *bool { return &o.PrintSuppressions },
}

// handled are the other flags lsan honours.
var handled = map[string]bool{"max_leaks": true, "exitcode": true, "log_path": true, "suppressions": true}

// ignored are sanitizer flags that only mean something inside an
// instrumented process: accepted without a word, as a script shared with
// an LSan build sets them.
var ignored = map[string]bool{
	"fast_unwind_on_malloc": true, "malloc_context_size": true, "allocator_may_return_null": true,
	"verbosity": true, "symbolize": true, "external_symbolizer_path": true, "strip_path_prefix": true,
	"log_exe_name": true, "log_suffix": true, "log_to_syslog": true, "abort_on_error": true,
	"halt_on_error": true, "exitcode_on_error": true, "use_ld_allocations": true, "use_poisoned": true,
	"use_tls_dynamic": true, "use_stacks_interceptor": true, "check_printf": true, "handle_segv": true,
	"handle_abort": true, "handle_sigill": true, "handle_sigfpe": true, "handle_sigbus": true,
	"allow_user_segv_handler": true, "coverage": true, "coverage_dir": true, "print_summary": true,
	"print_module_map": true, "color": true, "detect_deadlocks": true, "intercept_tls_get_addr": true,
	"include": true, "include_if_exists": true, "help": true, "dedup_token_length": true,
	"strict_string_checks": true, "intercept_strstr": true, "intercept_memcmp": true,
	"intercept_memmem": true, "intercept_intrin": true, "intercept_stat": true, "intercept_send": true,
	"decorate_proc_maps": true, "disable_coredump": true, "use_madv_dontdump": true,
	"stack_trace_format": true, "full_address_space": true, "max_allocation_size_mb": true,
	"allocator_release_to_os_interval_ms": true, "report_errors": true,
	"fast_unwind_on_fatal": true, "fast_unwind_on_check": true, "handle_ioctl": true,
	"detect_leaks_at_exit": true, "leak_check_at_exit_delay": true, "print_cmdline": true,
}

func (o *Options) apply(name, value string) error {
	if field, ok := bools[name]; ok {
		b, err := ParseBool(value)
		if err != nil {
			return err
		}
		*field(o) = b
		return nil
	}
	switch name {
	case "max_leaks":
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 {
			return fmt.Errorf("want a count (0: all)")
		}
		o.MaxLeaks = n
	case "exitcode":
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 || n > 255 {
			return fmt.Errorf("want an exit status from 0 to 255")
		}
		o.ExitCode = &n
	case "log_path":
		o.LogPath = value
	case "suppressions":
		o.Suppressions = value
	}
	return nil
}

// ParseBool reads a boolean as sanitizer_common's flag parser does:
// 0/1, no/yes, false/true.
func ParseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "yes", "true":
		return true, nil
	case "0", "no", "false":
		return false, nil
	}
	return false, fmt.Errorf("want 0 or 1 (yes/no, true/false)")
}

// ReportPath is where reports go for log_path, as LSan names it: the path
// with the process id appended ("" for stdout).
func (o Options) ReportPath(pid int) string {
	switch o.LogPath {
	case "", "stdout":
		return ""
	case "stderr":
		return "/dev/stderr"
	}
	return fmt.Sprintf("%s.%d", o.LogPath, pid)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
