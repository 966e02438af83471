package bpf

import (
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lsan-project/lsan/internal/testproc"
)

// requireBPF skips a test that needs BPF where it can't run, except in CI,
// where such a test must fail instead: it is never silently skipped there.
func requireBPF(t *testing.T) {
	t.Helper()
	testproc.RequireRoot(t, "BPF tests")
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kernel has no BTF (CI is set: BPF tests must run)")
		}
		t.Skip("kernel has no BTF")
	}
}

// buildC compiles a test program with frame pointers into a temp dir.
func buildC(t *testing.T, src string, extra ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(src), filepath.Ext(src)))
	args := append([]string{"-O0", "-g", "-fno-omit-frame-pointer", "-Wall", "-o", out, src}, extra...)
	if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", src, err, b)
	}
	return out
}

// target is a running test program that follows the ready/line/done protocol.
type target struct{ *testproc.Proc }

func startTarget(t *testing.T, path string, env ...string) *target {
	t.Helper()
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), env...)
	tg := &target{testproc.Start(t, cmd)}
	tg.Expect(t, "ready")
	return tg
}

// trigger lets the target do its allocations and waits until it is done.
func (tg *target) trigger(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(tg.Stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	tg.Expect(t, "done")
}

// symbolTable resolves addresses of the running target's executable to
// function names, using .symtab and the load bias from /proc/PID/maps.
type symbolTable struct {
	syms []elf.Symbol
	bias uint64
}

func loadSymbols(t *testing.T, pid int, exe string) *symbolTable {
	t.Helper()
	objs, err := mappedObjects(pid)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	st := &symbolTable{}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Size > 0 {
			st.syms = append(st.syms, s)
		}
	}
	for _, o := range objs {
		if o.Path == exe {
			if st.bias, err = loadBias(o, f); err != nil {
				t.Fatal(err)
			}
		}
	}
	return st
}

func (st *symbolTable) name(pc uint64) string {
	for _, s := range st.syms {
		if pc-st.bias >= s.Value && pc-st.bias < s.Value+s.Size {
			return s.Name
		}
	}
	return "?"
}

// callSite names the function that called the allocator: the first return
// address of the stack (after the allocator frame).
func callSite(t *testing.T, tr *Tracer, st *symbolTable, b Block) string {
	stack := tr.Stack(b)
	if len(stack) < 2 {
		return "no stack"
	}
	return st.name(stack[1] - 1)
}

// traceTrigger attaches the tracer to a target, lets it do its
// allocations, and returns the live blocks with a symbol table of exe.
// The tracer is closed when the test ends.
func traceTrigger(t *testing.T, tg *target, exe string, opts Options) (*Tracer, []Block, *symbolTable) {
	t.Helper()
	opts.PID = tg.Pid()
	tr, err := Attach(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	tg.trigger(t)
	blocks, err := tr.Blocks(tg.Pid())
	if err != nil {
		t.Fatal(err)
	}
	return tr, blocks, loadSymbols(t, tg.Pid(), exe)
}

// TestPairing runs with uprobe_multi links and the calls in flight in
// task-local storage, and with one perf-event uprobe per probe and the
// calls in a hash map (kernels before 6.6 and 6.2): both must see the same
// calls.
func TestPairing(t *testing.T) {
	requireBPF(t)
	exe := buildC(t, "testdata/pairing.c")
	for _, single := range []bool{false, true} {
		for _, exits := range []bool{false, true} {
			t.Run(fmt.Sprintf("single_links=%v,exit_probes=%v", single, exits), func(t *testing.T) {
				testPairing(t, exe, Options{SingleLinks: single, ExitProbes: exits, hashCalls: single})
			})
		}
	}
}

func testPairing(t *testing.T, exe string, opts Options) {
	tg := startTarget(t, exe)
	tr, blocks, st := traceTrigger(t, tg, exe, opts)
	if hashEntries := tr.objs.Inflight.MaxEntries(); (hashEntries == 1) == opts.hashCalls {
		t.Errorf("the in-flight hash map has %d entries with hashCalls %v: the other store is used", hashEntries, opts.hashCalls)
	}
	var got []string
	for _, b := range blocks {
		got = append(got, fmt.Sprintf("%s %s %d", callSite(t, tr, st, b), tr.FuncName(b.Fn), b.Size))
	}
	sort.Strings(got)
	// glibc aliases memalign to aligned_alloc: one probe, named after the
	// first name of the table that bound to it.
	want := []string{
		"do_aligned aligned_alloc 256",
		"do_aligned aligned_alloc 48",
		"do_aligned pvalloc 100",
		"do_aligned valloc 16",
		"do_calloc calloc 32",
		"do_malloc malloc 24",
		"do_malloc malloc 24",
		"do_posix_memalign posix_memalign 200",
		"do_realloc_chain realloc 1000",
		"do_realloc_fail malloc 60",
		"do_reallocarray reallocarray 30",
		"do_strdup strdup 13",
		"do_strdup strndup 4",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("live blocks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	c, err := tr.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.AllocsDropped != 0 || c.StacksDropped != 0 || c.InflightDropped != 0 || c.ForeignHits != 0 {
		t.Errorf("counters: %+v, want nothing dropped", c)
	}
}

// TestPerProcessFilter proves the kernel's per-process uprobe filter is in
// use: another process calling the same libc's malloc never reaches the
// BPF program. Without the filter, it does (the control half).
func TestPerProcessFilter(t *testing.T) {
	requireBPF(t)
	exe := buildC(t, "testdata/pairing.c")
	spin := buildC(t, "testdata/spin.c")
	for _, filtered := range []bool{true, false} {
		tg := startTarget(t, exe)
		tr, err := Attach(Options{PID: tg.Pid(), NoPIDFilter: !filtered})
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(spin).CombinedOutput(); err != nil || string(out) != "spun\n" {
			t.Fatalf("spin: %v %q", err, out)
		}
		c, err := tr.Counters()
		tr.Close()
		if err != nil {
			t.Fatal(err)
		}
		if filtered && c.ForeignHits != 0 {
			t.Errorf("with the per-process filter, %d probe hits came from another process", c.ForeignHits)
		}
		// The control: every return of the other process's 200,000
		// mallocs reaches the program (the entry and free probes ask
		// which process only where they must).
		if !filtered && c.ForeignHits < 200000 {
			t.Errorf("without the filter, only %d foreign hits (want >= 200,000: the control must see the other process)", c.ForeignHits)
		}
	}
}

func TestAttachErrors(t *testing.T) {
	requireBPF(t)
	for _, tc := range []struct {
		pid  int
		want string
	}{
		{-1, "invalid pid -1"},
		{0x3ffffff0, "no process with pid 1073741808"},
	} {
		_, err := Attach(Options{PID: tc.pid})
		if err == nil || err.Error() != tc.want {
			t.Errorf("Attach(%d) = %v, want %q", tc.pid, err, tc.want)
		}
	}
}

func TestDetachLeavesTargetRunning(t *testing.T) {
	requireBPF(t)
	exe := buildC(t, "testdata/pairing.c")
	tg := startTarget(t, exe)
	tr, err := Attach(Options{PID: tg.Pid()})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	// Probes gone, target untouched: it allocates and answers as before.
	tg.trigger(t)
}

// TestDiscoveryFollowsBinding checks which object gets the probes: the
// one the target's malloc really binds to.
func TestDiscoveryFollowsBinding(t *testing.T) {
	requireBPF(t)
	src := "testdata/pairing.c"
	glibc := buildC(t, src)
	static := filepath.Join(t.TempDir(), "pairing-musl")
	if out, err := exec.Command("musl-gcc", "-static", "-O0", "-fno-omit-frame-pointer", "-o", static, src).CombinedOutput(); err != nil {
		t.Fatalf("musl-gcc: %v\n%s", err, out)
	}
	const (
		libc     = "/usr/lib/x86_64-linux-gnu/libc.so.6"
		jemalloc = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
		tcmalloc = "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4"
	)
	for _, tc := range []struct {
		name, exe, env, override string
		wantMalloc, wantStrdup   string
	}{
		{"glibc", glibc, "", "", libc, libc},
		{"jemalloc preloaded", glibc, "LD_PRELOAD=" + jemalloc, "", jemalloc, libc},
		{"tcmalloc preloaded", glibc, "LD_PRELOAD=" + tcmalloc, "", tcmalloc, libc},
		{"static musl", static, "", "", static, static},
		{"override by file name", glibc, "LD_PRELOAD=" + jemalloc, "libjemalloc.so.2", jemalloc, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var env []string
			if tc.env != "" {
				env = append(env, tc.env)
			}
			tg := startTarget(t, tc.exe, env...)
			alloc, err := DiscoverAllocator(tg.Pid(), AllocatorFuncs, tc.override)
			if err != nil {
				t.Fatal(err)
			}
			realPath := func(p string) string { r, _ := filepath.EvalSymlinks(p); return r }
			if got := realPath(alloc.Bindings["malloc"].Object.Path); got != realPath(tc.wantMalloc) {
				t.Errorf("malloc bound to %s, want %s", got, tc.wantMalloc)
			}
			strdup, ok := alloc.Bindings["strdup"]
			if tc.wantStrdup == "" && ok {
				t.Errorf("strdup bound to %s, want it unbound (not in the --allocator object)", strdup.Object.Path)
			}
			if tc.wantStrdup != "" && (!ok || realPath(strdup.Object.Path) != realPath(tc.wantStrdup)) {
				t.Errorf("strdup bound to %+v, want %s", strdup.Object, tc.wantStrdup)
			}
			// The tracer works there too: the blocks of the test program
			// are seen with their call sites.
			tr, blocks, st := traceTrigger(t, tg, tc.exe, Options{Allocator: tc.override})
			n := 0
			for _, b := range blocks {
				if callSite(t, tr, st, b) == "do_malloc" && b.Size == 24 {
					n++
				}
			}
			if n != 2 {
				t.Errorf("%d blocks of 24 bytes from do_malloc, want 2", n)
			}
		})
	}
}

// TestFollowForks: with FollowForks, a fork of the target is reported as
// an event with the child stopped before it ran; once AddProcess has put
// its probes in place and it is continued, its allocations are recorded
// under its own pid, apart from its parent's.
func TestFollowForks(t *testing.T) {
	requireBPF(t)
	exe := buildC(t, "testdata/forker.c")
	tg := startTarget(t, exe)
	tr, err := Attach(Options{PID: tg.Pid(), FollowForks: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	if _, err := io.WriteString(tg.Stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	var ev Event
	select {
	case ev = <-tr.Events():
	case <-time.After(10 * time.Second):
		t.Fatal("no fork event")
	}
	t.Cleanup(func() { syscall.Kill(ev.Child, syscall.SIGKILL) })
	if ev.Type != EventFork || ev.PID != tg.Pid() || ev.Child <= 0 {
		t.Fatalf("event %+v, want a fork of pid %d", ev, tg.Pid())
	}
	if !eventuallyStopped(ev.Child) {
		t.Errorf("child %d is not stopped at birth", ev.Child)
	}
	if err := tr.AddProcess(ev.Child); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(ev.Child, syscall.SIGCONT)
	tg.Expect(t, fmt.Sprintf("child %d", ev.Child))
	tg.Expect(t, "done")
	for _, tc := range []struct {
		pid  int
		want string
	}{{tg.Pid(), "[50 100]"}, {ev.Child, "[200 300]"}} {
		blocks, err := tr.Blocks(tc.pid)
		if err != nil {
			t.Fatal(err)
		}
		var sizes []int
		for _, b := range blocks {
			sizes = append(sizes, int(b.Size))
		}
		sort.Ints(sizes)
		if got := fmt.Sprint(sizes); got != tc.want {
			t.Errorf("pid %d: blocks %s, want %s", tc.pid, got, tc.want)
		}
	}
	c, err := tr.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if c.Forks != 1 || c.ForeignHits != 0 || c.EventsDropped != 0 {
		t.Errorf("counters %+v: want 1 fork, no foreign hits, no dropped events", c)
	}
}

// eventuallyStopped waits up to a second for pid to be in a stop.
func eventuallyStopped(pid int) bool {
	for i := 0; i < 1000; i++ {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err == nil {
			if i := strings.LastIndexByte(string(data), ')'); i >= 0 && i+2 < len(data) && data[i+2] == 'T' {
				return true
			}
		}
		time.Sleep(time.Millisecond)
	}
	return false
}
