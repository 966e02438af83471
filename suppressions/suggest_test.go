package suppressions

import (
	"strings"
	"testing"

	"github.com/lsan-project/lsan/symbolize"
)

func TestSuggest(t *testing.T) {
	libstdcxx := "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"
	cases := []struct {
		name  string
		stack []symbolize.Frame
		want  string
		frame int
	}{
		{"own function after malloc", appStack(), "leak:^quokka_direct$", 1},
		{"stack without allocator frame", appStack()[1:], "leak:^quokka_direct$", 0},
		{"LSan interceptor in the executable", []symbolize.Frame{
			{Function: "__interceptor_malloc", Module: app}, {Function: "make_buf", Module: app}},
			"leak:^make_buf$", 1},
		{"libc function in between", []symbolize.Frame{
			mallocFrame, {Function: "strdup", Module: libc}, {Function: "copy_name", Module: app}},
			"leak:^copy_name$", 2},
		{"C++ runtime and std templates", []symbolize.Frame{
			mallocFrame,
			{Function: "operator new(unsigned long)", Module: libstdcxx},
			{Function: "std::__new_allocator<int>::allocate(unsigned long, void const*)", Module: app, Inlined: true},
			{Function: "std::vector<int, std::allocator<int> >::_M_realloc_insert(int const&)", Module: app},
			{Function: "ns::Cache::insert(int)", Module: app, File: "/src/cache.cc"}},
			"leak:^ns::Cache::insert(int)$", 4},
		{"inlined own frame", []symbolize.Frame{
			mallocFrame,
			{Function: "fill", Module: app, Inlined: true},
			{Function: "caller_of_fill", Module: app}},
			"leak:^fill$", 1},
		{"allocation wrapper", []symbolize.Frame{
			mallocFrame, {Function: "xmalloc", Module: app}, {Function: "read_config", Module: app}, {Function: "main", Module: app}},
			"leak:^read_config$", 2},
		{"wrapper called from main", []symbolize.Frame{
			mallocFrame, {Function: "g_malloc0", Module: "/usr/lib/libglib-2.0.so.0"}, {Function: "main", Module: app}},
			"leak:^g_malloc0$", 1},
		{"jemalloc frames", []symbolize.Frame{
			{Function: "je_malloc_default", Module: "/usr/lib/libjemalloc.so.2"},
			{Function: "malloc", Module: "/usr/lib/libjemalloc.so.2"},
			{Function: "sdsnewlen", Module: "/usr/bin/redis-server"}},
			"leak:^sdsnewlen$", 2},
		{"star and dollar in the name", []symbolize.Frame{
			mallocFrame, {Function: "Vec::operator*=(int)", Module: app}},
			"leak:^Vec::operator*=(int)$", 1},
		{"dollar in the name", []symbolize.Frame{mallocFrame, {Function: "dollar$fn", Module: app}},
			"leak:^dollar*fn$", 1},
		{"name ending in a star", []symbolize.Frame{mallocFrame, {Function: "operator*", Module: app}},
			"leak:^operator*$", 1},
		{"name starting with a caret and a hash", []symbolize.Frame{mallocFrame, {Function: "#^odd", Module: app}},
			"leak:^#^odd$", 1},
		{"no function: file", []symbolize.Frame{mallocFrame, {Module: app, File: "/src/gen.c"}},
			"leak:^/src/gen.c$", 1},
		{"no function or file: library", []symbolize.Frame{mallocFrame, {Module: libfoo, ModuleOffset: 0x1234}},
			"leak:libfoo.so.1", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := SuggestFor(c.stack)
			if s.Rule != c.want || s.Frame != c.frame {
				t.Errorf("SuggestFor = %q at frame %d (%s), want %q at frame %d", s.Rule, s.Frame, s.Reason, c.want, c.frame)
			}
			if Suggest(c.stack) != s.Rule {
				t.Error("Suggest differs from SuggestFor")
			}
			if r := mustParse(t, s.Rule).Match(c.stack); r == nil {
				t.Errorf("%s does not match its stack", s.Rule)
			}
		})
	}
}

func TestSuggestReasons(t *testing.T) {
	cases := []struct {
		name   string
		stack  []symbolize.Frame
		reason string
	}{
		{"main", []symbolize.Frame{mallocFrame, {Function: "main", Module: app}},
			"the leak is allocated directly in main, which is on every stack; a rule naming it would hide every leak"},
		{"stripped executable", []symbolize.Frame{mallocFrame, {Module: app, ModuleOffset: 0x1234}},
			"the call site in /srv/app has no usable symbols; a rule naming the executable would hide every leak"},
		{"unknown call site", []symbolize.Frame{mallocFrame, {PC: 0xdead}, {Function: "main", Module: app}},
			"frame #1, the first outside the allocator and runtime libraries, is not symbolized"},
		{"runtime only", []symbolize.Frame{mallocFrame, {Function: "_dl_new_object", Module: ldso}},
			"every frame belongs to the allocator or a runtime library"},
		{"empty stack", nil, "every frame belongs to the allocator or a runtime library"},
		{"name of wildcard characters only", []symbolize.Frame{mallocFrame, {Function: "*$", Module: app}},
			"the call site in /srv/app has no usable symbols; a rule naming the executable would hide every leak"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := SuggestFor(c.stack)
			if s.Rule != "" || s.Frame != -1 || s.Reason != c.reason {
				t.Errorf("SuggestFor = %+v, want no rule because %q", s, c.reason)
			}
		})
	}
	got := SuggestFor(appStack()).Reason
	if want := "frame #1 is the first outside the allocator and runtime libraries; it names the function"; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
	wrapped := []symbolize.Frame{mallocFrame, {Function: "xmalloc", Module: app}, {Function: "read_config", Module: app}}
	if got, want := SuggestFor(wrapped).Reason, "frame #2 calls the allocation wrapper xmalloc; it names the function"; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
}

func TestExactTemplateMatchesOnlyItsName(t *testing.T) {
	names := []string{"f", "quokka_direct", "a$b$c", "**x**", "$", "x*", "ab*ab", "foo_foo", "^x", "a\nb", "ns::f(int) const"}
	for _, name := range names {
		tmpl := exactTemplate(name)
		if !TemplateMatch(tmpl, name) {
			t.Errorf("%q does not match %q", tmpl, name)
		}
		if strings.ContainsAny(name, "*$\n") {
			continue // wildcards stand in for those characters
		}
		for _, other := range []string{name + "x", "x" + name, name[:len(name)-1]} {
			if TemplateMatch(tmpl, other) {
				t.Errorf("%q matches %q", tmpl, other)
			}
		}
	}
}
