package lsanoptions

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	o, warnings, err := Parse("use_stacks=0:use_registers=no:use_globals=false:use_tls=0:use_unaligned=1:report_objects=yes:detect_leaks=1:leak_check_at_exit=0:log_path=/tmp/r:exitcode=7:max_leaks=3:fast_unwind_on_malloc=0:bogus_flag=1")
	if err != nil {
		t.Fatal(err)
	}
	if o.UseStacks || o.UseRegisters || o.UseGlobals || o.UseTLS || !o.UseUnaligned || !o.ReportObjects ||
		!o.DetectLeaks || o.LeakCheckAtExit || o.LogPath != "/tmp/r" || *o.ExitCode != 7 || o.MaxLeaks != 3 {
		t.Errorf("parsed %+v", o)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], `unknown flag "bogus_flag"`) {
		t.Errorf("warnings %q", warnings)
	}
	if got := o.ReportPath(42); got != "/tmp/r.42" {
		t.Errorf("report path %q", got)
	}
	if !o.IsSet("use_tls") || o.IsSet("use_root_regions") {
		t.Error("IsSet")
	}
}

func TestParseDefaults(t *testing.T) {
	o, warnings, err := Parse("")
	if err != nil || len(warnings) != 0 {
		t.Fatal(err, warnings)
	}
	if !o.DetectLeaks || !o.LeakCheckAtExit || !o.UseStacks || !o.UseRegisters || !o.UseGlobals || !o.UseTLS || o.UseUnaligned || o.ReportObjects || o.ExitCode != nil {
		t.Errorf("defaults %+v", o)
	}
}

func TestParseBadValues(t *testing.T) {
	for _, tc := range []struct{ in, key string }{
		{"use_stacks=maybe", "use_stacks=maybe"},
		{"report_objects=2", "report_objects=2"},
		{"exitcode=300", "exitcode=300"},
		{"exitcode=-1", "exitcode=-1"},
		{"max_leaks=x", "max_leaks=x"},
		{"detect_leaks", "expected '='"},
	} {
		_, _, err := Parse(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: error %v, want one naming %q", tc.in, err, tc.key)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "use_stacks=0", "a=1:b='x y'", "log_path=\"/tmp/a b\",exitcode=3", "detect_leaks"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, _, err := Parse(s)
		if err == nil && o.ExitCode != nil && (*o.ExitCode < 0 || *o.ExitCode > 255) {
			t.Errorf("exit code %d accepted", *o.ExitCode)
		}
	})
}
