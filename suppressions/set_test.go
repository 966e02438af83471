package suppressions

import (
	"slices"
	"strings"
	"testing"

	"github.com/lsan-project/lsan/symbolize"
)

const (
	libc   = "/usr/lib/x86_64-linux-gnu/libc.so.6"
	ldso   = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
	app    = "/srv/app"
	libfoo = "/opt/foo/lib/libfoo.so.1"
)

// mallocFrame is the allocator frame lsan's stacks start with.
var mallocFrame = symbolize.Frame{PC: 0x7f0000001000, Function: "malloc", Module: libc}

// appStack is malloc <- quokka_direct (app.c) <- handle_request <- main,
// with parse_header inlined into handle_request, then libc's start code.
func appStack() []symbolize.Frame {
	return []symbolize.Frame{
		mallocFrame,
		{PC: 0x1010, Function: "quokka_direct", Module: app, File: "/src/app.c", Line: 34},
		{PC: 0x1020, Function: "parse_header", Module: app, File: "/src/http/header.h", Line: 7, Inlined: true},
		{PC: 0x1020, Function: "handle_request", Module: app, File: "/src/http/server.c", Line: 88},
		{PC: 0x1030, Function: "main", Module: app, File: "/src/main.c", Line: 12},
		{PC: 0x7f0000002000, Function: "__libc_start_call_main", Module: libc},
	}
}

func mustParse(t *testing.T, in string) *Set {
	t.Helper()
	set, _, err := Parse("t.supp", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestMatch(t *testing.T) {
	libfooStack := []symbolize.Frame{
		mallocFrame,
		{PC: 0x2010, Function: "foo_make", Module: libfoo},
		{PC: 0x1040, Function: "use_foo", Module: app, File: "/src/use.c"},
	}
	cxxStack := []symbolize.Frame{
		mallocFrame,
		{PC: 0x7f0000003000, Function: "operator new(unsigned long)", Module: "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"},
		{PC: 0x1050, Function: "ns::Cache::insert(std::string const&)", Module: app, File: "/src/cache.cc"},
	}
	unknownStack := []symbolize.Frame{mallocFrame, {PC: 0xdead}}
	cases := []struct {
		name  string
		rules string
		stack []symbolize.Frame
		want  string // pattern of the matching rule, "" for none
	}{
		{"function substring", "leak:quokka", appStack(), "quokka"},
		{"function anchored", "leak:^quokka_direct$", appStack(), "^quokka_direct$"},
		{"no match", "leak:^quokka$\nleak:nothing", appStack(), ""},
		{"file", "leak:server.c", appStack(), "server.c"},
		{"file is a full path", "leak:^server.c", appStack(), ""},
		{"module", "leak:libfoo.so", libfooStack, "libfoo.so"},
		{"module of a deep frame", "leak:libc.so", appStack()[1:], "libc.so"},
		{"inlined frame function", "leak:^parse_header$", appStack(), "^parse_header$"},
		{"inlined frame file", "leak:header.h", appStack(), "header.h"},
		{"frame deep in the stack", "leak:^main$", appStack(), "^main$"},
		{"C++ name", "leak:ns::Cache::insert", cxxStack, "ns::Cache::insert"},
		{"C++ name anchored", "leak:^ns::Cache::insert(std::string const&)$", cxxStack, "^ns::Cache::insert(std::string const&)$"},
		{"C++ runtime module", "leak:libstdc++", cxxStack, "libstdc++"},
		{"allocator frame hides everything", "leak:malloc", appStack(), "malloc"},
		{"unknown module", "leak:^<unknown module>$", unknownStack[1:], "^<unknown module>$"},
		{"unknown function and file never match", "leak:^$\nleak:0xdead", unknownStack[1:], ""},

		// Order: the innermost matching frame wins over rule order.
		{"inner frame beats earlier rule", "leak:handle_request\nleak:quokka_direct", appStack(), "quokka_direct"},
		{"inlined frame beats its container", "leak:^handle_request$\nleak:^parse_header$", appStack(), "^parse_header$"},
		// At one frame: module, then function, then file.
		{"module before function", "leak:use_foo\nleak:foo_make\nleak:libfoo", libfooStack, "libfoo"},
		{"function before file", "leak:app.c\nleak:quokka_direct", appStack()[1:], "quokka_direct"},
		// For one string, the first rule in order wins.
		{"first rule wins", "leak:quokka\nleak:quokka_direct\nleak:direct", appStack()[1:], "quokka"},
		// ... but "*" matches the module, which is tried before the function.
		{"later catch-all matches the module first", "leak:quokka\nleak:*", appStack()[1:], "*"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := mustParse(t, c.rules).Match(c.stack)
			got := ""
			if r != nil {
				got = r.Pattern
			}
			if got != c.want {
				t.Errorf("Match = %q, want %q", got, c.want)
			}
		})
	}
}

func TestMatchEdgeCases(t *testing.T) {
	var nilSet *Set
	if nilSet.Match(appStack()) != nil || (&Set{}).Match(appStack()) != nil {
		t.Error("empty sets match")
	}
	if mustParse(t, "leak:*").Match(nil) != nil {
		t.Error("an empty stack matches")
	}
	// A stack ending in inlined frames (their container lost) still works.
	stack := []symbolize.Frame{{Function: "inner", Inlined: true}, {Function: "outer", Inlined: true}}
	if r := mustParse(t, "leak:outer").Match(stack); r == nil {
		t.Error("trailing inlined frames are not matched")
	}
}

func TestSplitByPC(t *testing.T) {
	pcs := splitByPC(appStack())
	var sizes []int
	for _, pc := range pcs {
		sizes = append(sizes, len(pc))
	}
	if !slices.Equal(sizes, []int{1, 1, 2, 1, 1}) {
		t.Errorf("PC sizes %v", sizes)
	}
	if moduleOf(pcs[2]) != app || moduleOf([]symbolize.Frame{{}}) != unknownModule {
		t.Error("moduleOf")
	}
}

func TestCounts(t *testing.T) {
	set := mustParse(t, "leak:never\nleak:quokka\nleak:handle_request\n")
	other := []symbolize.Frame{mallocFrame, {Function: "handle_request", Module: app}}

	set.Record(set.Match(other), 2, 64)
	set.Record(set.Match(appStack()), 1, 100)
	set.Record(set.Match(appStack()), 3, 300)
	set.Record(nil, 5, 5) // no match: ignored

	used := set.Used()
	var got []string
	for _, r := range used {
		got = append(got, r.String())
	}
	// Table order is rule order, not the order of the hits.
	if !slices.Equal(got, []string{"leak:quokka", "leak:handle_request"}) {
		t.Fatalf("Used %q", got)
	}
	if used[0].Hits != 4 || used[0].Bytes != 400 || used[1].Hits != 2 || used[1].Bytes != 64 {
		t.Errorf("counts %d/%d and %d/%d", used[0].Hits, used[0].Bytes, used[1].Hits, used[1].Bytes)
	}

	set.ResetCounts()
	if len(set.Used()) != 0 || set.Rules[1].Hits != 0 || set.Rules[1].Bytes != 0 {
		t.Error("ResetCounts left counts")
	}
	var nilSet *Set
	nilSet.ResetCounts()
	nilSet.Record(nil, 1, 1)
	if nilSet.Used() != nil {
		t.Error("nil set has used rules")
	}
}

func TestMerge(t *testing.T) {
	a := mustParse(t, "leak:x\nleak:shared")
	b := mustParse(t, "leak:shared\nleak:y")
	a.Rules[0].Hits = 7
	m := a.Merge(b)
	if got := patterns(m); !slices.Equal(got, []string{"x", "shared", "shared", "y"}) {
		t.Fatalf("merged %q", got)
	}
	if m.Rules[0].Hits != 7 {
		t.Error("Merge dropped counts")
	}
	// The copy is independent of its inputs.
	m.Record(m.Rules[1], 1, 1)
	if a.Rules[1].Hits != 0 {
		t.Error("Merge shares rules with its input")
	}
	// Rules of the receiver win ties.
	stack := []symbolize.Frame{{Function: "shared"}}
	if r := m.Match(stack); r != m.Rules[1] {
		t.Errorf("Match = %+v", r)
	}
	var nilSet *Set
	if got := patterns(nilSet.Merge(b)); !slices.Equal(got, []string{"shared", "y"}) {
		t.Errorf("nil.Merge %q", got)
	}
	if got := patterns(a.Merge(nil)); !slices.Equal(got, []string{"x", "shared"}) {
		t.Errorf("Merge(nil) %q", got)
	}
}

func TestDefaults(t *testing.T) {
	d := Defaults()
	var got []string
	for _, r := range d.Rules {
		if !r.Default || r.File != "<built-in>" {
			t.Errorf("rule %+v is not marked built-in", *r)
		}
		got = append(got, r.String())
	}
	want := []string{"leak:*tls_get_addr*", "leak:*dlerror*", "<allocated by the dynamic linker>", "leak:MallocExtension::Register"}
	if !slices.Equal(got, want) {
		t.Errorf("Defaults %q, want %q", got, want)
	}
	if Defaults().Rules[0] == d.Rules[0] {
		t.Error("Defaults shares rules between calls")
	}
}

func TestDefaultsMatch(t *testing.T) {
	ldCall := func(fn string) symbolize.Frame { return symbolize.Frame{Function: fn, Module: ldso} }
	cases := []struct {
		name  string
		stack []symbolize.Frame
		want  string
	}{
		{"dynamic TLS", []symbolize.Frame{mallocFrame, ldCall("tls_get_addr_tail"), ldCall("__tls_get_addr"), {Function: "use_tls", Module: app}},
			"<allocated by the dynamic linker>"},
		{"tls_get_addr via libc", []symbolize.Frame{mallocFrame, {Function: "__tls_get_addr", Module: "/lib/ld-musl-x86_64.so.1"}},
			"*tls_get_addr*"},
		{"dlerror buffer", []symbolize.Frame{mallocFrame, {Function: "_dlerror_run", Module: libc, File: "dlerror.c"}, {Function: "dlsym", Module: libc}},
			"*dlerror*"},
		{"link map of dlopen", []symbolize.Frame{
			{Function: "calloc", Module: libc}, ldCall("_dl_new_object"), ldCall("_dl_map_object_from_fd"),
			ldCall("_dl_map_object"), ldCall("dl_open_worker"), {Function: "dlopen", Module: libc}, {Function: "load_plugin", Module: app}},
			"<allocated by the dynamic linker>"},
		{"stack starting at the call site", []symbolize.Frame{ldCall("_dl_allocate_tls")}, "<allocated by the dynamic linker>"},
		{"operator new then malloc", []symbolize.Frame{mallocFrame,
			{Function: "operator new(unsigned long)", Module: "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"}, ldCall("_dl_whatever")},
			""}, // operator new's caller is ld.so, but operator new is not an allocator entry point here
		{"interceptor", []symbolize.Frame{{Function: "__interceptor_malloc", Module: app}, ldCall("_dl_new_object")},
			"<allocated by the dynamic linker>"},
		{"library constructor run by ld.so is reported", []symbolize.Frame{mallocFrame,
			{Function: "plugin_init", Module: libfoo}, ldCall("call_init"), ldCall("_dl_init")}, ""},
		{"tcmalloc's dropped default extension", []symbolize.Frame{
			{Function: "operator new(unsigned long)", Module: "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4"},
			{Function: "MallocExtension::Register(MallocExtension*)", Module: "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4"}},
			"MallocExtension::Register"},
		{"own code", appStack(), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Defaults().Match(c.stack)
			got := ""
			if r != nil {
				got = r.Pattern
			}
			if got != c.want {
				t.Errorf("Match = %q, want %q", got, c.want)
			}
		})
	}
}

// A user rule cannot take the credit for a block the dynamic-linker rule
// hides: LSan drops such blocks before it tries any rule.
func TestDynamicLinkerRuleComesFirst(t *testing.T) {
	set := mustParse(t, "leak:_dl_").Merge(Defaults())
	stack := []symbolize.Frame{mallocFrame, {Function: "_dl_new_object", Module: ldso}}
	if r := set.Match(stack); r == nil || r.Pattern != dynamicLinkerPattern {
		t.Errorf("Match = %+v", r)
	}
}
