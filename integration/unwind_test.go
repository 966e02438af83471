package integration

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lsan-project/lsan/internal/testproc"
)

// Programs built as distributions build them (-O2, no frame pointers)
// must get the stacks gdb's bt shows at the allocation, up to main, in run
// and attach mode: the CFI unwinder in the probe (docs/unwind.md).

// buildUnwindProgram compiles testdata/unwind/SRC with the given flags.
func buildUnwindProgram(t *testing.T, src, compiler string, flags ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(src, filepath.Ext(src)))
	args := append([]string{"-O2", "-g", "-fomit-frame-pointer", "-o", out, filepath.Join("testdata", "unwind", src)}, flags...)
	if b, err := exec.Command(compiler, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", compiler, src, err, b)
	}
	return out
}

var gdbFrame = regexp.MustCompile(`^#\d+\s+(?:(0x[0-9a-f]+) in )?(.+?) \(`)

// gdbStacks runs exe under gdb, breaks on malloc once run_leaks is
// entered, and returns each backtrace's frames that lie in exe, innermost
// first, up to main. gdb runs the program without ASLR, so exe's frames
// are those whose PC is in exe's mapping; an inlined frame (no PC) belongs
// to the module of the frame printed with a PC before it.
func gdbStacks(t *testing.T, exe string) [][]string {
	return gdbStacksFrom(t, exe, "run_leaks", "main")
}

// gdbStacksFrom is gdbStacks with the function where malloc breakpoints
// start and the outermost frame kept.
func gdbStacksFrom(t *testing.T, exe, start, outer string) [][]string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "bt.gdb")
	os.WriteFile(script, []byte(strings.Join([]string{
		"set pagination off", "set breakpoint pending on", "set confirm off",
		"break " + start, "run",
		"info proc mappings",
		"break malloc", "commands", "silent", "bt", "continue", "end",
		"continue", "quit",
	}, "\n")+"\n"), 0o644)
	cmd := exec.Command("timeout", "120", "gdb", "-nx", "-batch", "-x", script, exe)
	out, err := cmd.CombinedOutput()
	if err != nil && len(out) == 0 {
		t.Fatalf("gdb: %v", err)
	}
	lo, hi := exeRange(t, string(out), exe)
	var stacks [][]string
	var cur []string
	inExe, done := false, false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		m := gdbFrame.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if strings.HasPrefix(line, "#0 ") {
			if len(cur) > 0 {
				stacks = append(stacks, cur)
			}
			cur, inExe, done = nil, false, false
		}
		if m[1] != "" {
			var pc uint64
			fmt.Sscanf(m[1], "0x%x", &pc)
			inExe = pc >= lo && pc < hi
		}
		if inExe && !done {
			cur = append(cur, m[2])
			done = m[2] == outer
		}
	}
	if len(cur) > 0 {
		stacks = append(stacks, cur)
	}
	if len(stacks) == 0 {
		t.Fatalf("no backtrace from gdb:\n%s", out)
	}
	return stacks
}

// exeRange reads exe's address range from gdb's `info proc mappings`.
func exeRange(t *testing.T, out, exe string) (lo, hi uint64) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[len(f)-1] != exe {
			continue
		}
		var s, e uint64
		fmt.Sscanf(f[0], "0x%x", &s)
		fmt.Sscanf(f[1], "0x%x", &e)
		if lo == 0 || s < lo {
			lo = s
		}
		if e > hi {
			hi = e
		}
	}
	if hi == 0 {
		t.Fatalf("no mapping of %s in gdb's output:\n%s", exe, out)
	}
	return lo, hi
}

// lsanStacks returns each leak group's frames that lie in exe, up to
// main, and fails on a marker or an unnamed frame anywhere in a stack.
func lsanStacks(t *testing.T, r jsonReport, exe string) [][]string {
	t.Helper()
	var out [][]string
	for _, g := range r.Leaks {
		var frames []string
		for _, f := range g.Stack {
			if f.Function == "" || strings.HasPrefix(f.Function, "[unwind") {
				t.Errorf("leak stack has frame %+v: %+v", f, g.Stack)
			}
			if f.Module == exe {
				frames = append(frames, f.Function)
				if f.Function == "main" {
					break
				}
			}
		}
		out = append(out, frames)
	}
	return out
}

func joinStacks(stacks [][]string) []string {
	var out []string
	for _, s := range stacks {
		out = append(out, strings.Join(s, " < "))
	}
	sort.Strings(out)
	return out
}

// userFrames are deep.c's own functions (and the inlined getline
// wrapper), the frames the expected stacks name.
var userFrames = []string{"deep_level3", "deep_level2", "deep_level1", "getline", "run_leaks", "main"}

// checkAgainstGDB asserts the stacks of the leaks made in run_leaks: each
// is the end of a backtrace gdb printed at a malloc (lsan's frame 0 is the
// outer allocator call, strdup where gdb's innermost is malloc), and they
// are exactly the three leaks of deep.c. Other leaks (a static glibc's
// start-up allocations) must reach _start.
func checkAgainstGDB(t *testing.T, got, truth [][]string) {
	t.Helper()
	var user [][]string
	for _, s := range got {
		if !slices.Contains(s, "run_leaks") {
			if len(s) == 0 || s[len(s)-1] != "_start" {
				t.Errorf("start-up leak stack %q does not reach _start", strings.Join(s, " < "))
			}
			continue
		}
		if !isSuffixOfAny(s, truth) {
			t.Errorf("lsan stack %q is the end of none of gdb's backtraces:\n%s", strings.Join(s, " < "), strings.Join(joinStacks(truth), "\n"))
		}
		var names []string
		for _, f := range s {
			if slices.Contains(userFrames, f) {
				names = append(names, f)
			}
		}
		user = append(user, names)
	}
	want := []string{
		"deep_level3 < deep_level2 < deep_level1 < run_leaks < main", // strdup
		"getline < run_leaks < main",                                 // getline (inlined wrapper)
		"run_leaks < main",                                           // asprintf
	}
	if g := joinStacks(user); !slices.Equal(g, want) {
		t.Errorf("leak stacks:\n%s\nwant:\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
}

func isSuffixOfAny(s []string, stacks [][]string) bool {
	for _, st := range stacks {
		if len(st) >= len(s) && slices.Equal(st[len(st)-len(s):], s) {
			return true
		}
	}
	return false
}

// lastLeakReport runs `lsan run --format json` with args (flags, "--",
// the command), wants exit status 23 (leaks found) and returns the last
// report.
func lastLeakReport(t *testing.T, args ...string) jsonReport {
	t.Helper()
	cmd := exec.Command(lsan(t), append([]string{"run", "--format", "json"}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 23 {
		t.Fatalf("lsan run %s: %v (want exit 23)\n%s", strings.Join(args, " "), err, stderr.String())
	}
	reps := jsonReportsIn(t, stdout.String())
	return reps[len(reps)-1]
}

func TestUnwindRunMode(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"dynamic", nil},
		{"static", []string{"-static"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exe := buildUnwindProgram(t, "deep.c", "gcc", tc.flags...)
			truth := gdbStacks(t, exe)
			for _, mode := range []string{"auto", "cfi"} {
				r := lastLeakReport(t, "--unwind", mode, "--", exe)
				checkAgainstGDB(t, lsanStacks(t, r, exe), truth)
			}
		})
	}
}

// TestUnwindRowBudget: --max-unwind-rows bounds the row table; a file
// whose rows do not fit gets none (frame pointers or a marker instead),
// and the leak check is unchanged.
func TestUnwindRowBudget(t *testing.T) {
	requireRoot(t)
	exe := buildUnwindProgram(t, "deep.c", "gcc")
	stats := map[string]uint64{}
	for _, rows := range []string{"1048576", "64"} {
		r := lastLeakReport(t, "--max-unwind-rows", rows, "--", exe)
		stats[rows] = r.Stats.UnwindTableBytes
		if len(r.Leaks) == 0 {
			t.Errorf("--max-unwind-rows %s: no leak reported", rows)
		}
	}
	// libc alone has ~28k rows: a full table holds more than 64 rows' worth.
	if stats["64"] > 64*8 || stats["1048576"] <= 64*8 {
		t.Errorf("unwind table bytes: %d with 64 rows, %d with the default; want at most 512, then more", stats["64"], stats["1048576"])
	}
}

// TestUnwindExec: a program that a shell execs gets its rows before its
// first instruction (lsan run's process stops at execve and at the
// dynamic linker's hook until they are loaded): its leaks, made at once,
// have the stacks gdb shows.
func TestUnwindExec(t *testing.T) {
	requireRoot(t)
	exe := buildUnwindProgram(t, "deep.c", "gcc")
	truth := gdbStacks(t, exe)
	for _, mode := range []string{"auto", "cfi"} {
		r := lastLeakReport(t, "--unwind", mode, "--", "/bin/sh", "-c", "exec "+exe)
		for _, g := range r.Leaks {
			for _, f := range g.Stack {
				if strings.HasPrefix(f.Function, "[unwind") {
					t.Errorf("--unwind %s: stack cut: %+v", mode, g.Stack)
				}
			}
		}
		checkAgainstGDB(t, lsanStacks(t, r, exe), truth)
	}
}

// TestUnwindExecAttach: a process lsan -p attached to calls execve and
// the new program leaks at once, before the loader has read the new
// image's mappings (or just after): the probe's stacks of that moment are
// walked again by lsan, so every leak's stack is gdb's, with no marker.
func TestUnwindExecAttach(t *testing.T) {
	requireRoot(t)
	exe := buildUnwindProgram(t, "deep.c", "gcc")
	truth := gdbStacks(t, exe)
	for _, mode := range []string{"auto", "cfi"} {
		cmd := exec.Command("/bin/sh", "-c", `read line; exec "$0" linger`, exe)
		p := testproc.Start(t, cmd)
		a := attach(t, cmd.Process.Pid, "--format", "json", "--unwind", mode, "--interval", "1h")
		io.WriteString(p.Stdin, "go\n")
		p.Expect(t, "done")
		if code := a.stop(t); code != 23 {
			t.Fatalf("--unwind %s: lsan exit %d, want 23\n%s", mode, code, a.stderr.String())
		}
		reps := parseReports(t, a.stdout.String())
		last := reps[len(reps)-1]
		if last.Stats.StacksCut != 0 {
			t.Errorf("--unwind %s: %d stack(s) cut", mode, last.Stats.StacksCut)
		}
		checkAgainstGDB(t, lsanStacks(t, last, exe), truth)
		t.Logf("--unwind %s: %d stack(s) walked again by lsan", mode, last.Stats.StacksLate)
	}
}

// TestUnwindForeignUretprobe: while another tool's uretprobe sits on
// libc's malloc (here another lsan attached to another process, with
// uretprobes), the breakpoint the kernel installs in lsan run's command
// makes every malloc there return through the uretprobe trampoline: the
// return address on the stack is the trampoline's. The walk takes the
// real one from the kernel's pending return instances, so the stacks are
// still gdb's.
func TestUnwindForeignUretprobe(t *testing.T) {
	requireRoot(t)
	exe := buildUnwindProgram(t, "deep.c", "gcc")
	truth := gdbStacks(t, exe)
	other := testproc.Start(t, exec.Command("sleep", "600"))
	foreign := attach(t, other.Pid(), "--return-probes", "uretprobe", "-i", "1h")
	defer foreign.stop(t)
	for _, mode := range []string{"auto", "cfi"} {
		r := lastLeakReport(t, "--unwind", mode, "--", exe)
		checkAgainstGDB(t, lsanStacks(t, r, exe), truth)
	}
}

// userView reduces a stack's frames in the executable to the program's
// own functions, named without parameters (gdb and lsan spell inlined STL
// frames differently), and counts all of them: the count proves no frame
// is missing or extra, the names that the order is right.
func userView(frames []string) string {
	var names []string
	for _, f := range frames {
		if strings.HasPrefix(f, "std::") || strings.HasPrefix(f, "__gnu_cxx::") || strings.Contains(f, " std::") {
			continue
		}
		if i := strings.Index(f, "("); i > 0 {
			f = f[:i]
		}
		names = append(names, strings.TrimSpace(f))
	}
	return fmt.Sprintf("%s [%d frames]", strings.Join(names, " < "), len(frames))
}

// TestUnwindCxx: C++ built -O2 -fomit-frame-pointer (a class template,
// inlined std::map and std::string, an allocation in a catch handler):
// every leak's frames in the executable are those of a gdb backtrace at
// a malloc, and the expected call chains are all there.
func TestUnwindCxx(t *testing.T) {
	requireRoot(t)
	exe := buildUnwindProgram(t, "cxx.cc", "g++")
	truth := map[string]bool{}
	for _, s := range gdbStacks(t, exe) {
		truth[userView(s)] = true
	}
	cmd := exec.Command(lsan(t), "run", "--format", "json", "--", exe)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err == nil {
		t.Fatalf("lsan run found no leak\n%s", stderr.String())
	}
	reps := jsonReportsIn(t, stdout.String())
	got := map[string]bool{}
	for _, s := range lsanStacks(t, reps[len(reps)-1], exe) {
		v := userView(s)
		got[v] = true
		if !truth[v] {
			var all []string
			for k := range truth {
				all = append(all, k)
			}
			sort.Strings(all)
			t.Errorf("lsan stack %q is none of gdb's backtraces:\n%s", v, strings.Join(all, "\n"))
		}
	}
	for _, want := range []string{
		"recover_after_throw < run_leaks < main",
		"build_map < run_leaks < main",
		"Registry<Widget>::add < run_leaks < main",
		"run_leaks < main",
	} {
		found := false
		for v := range got {
			found = found || strings.HasPrefix(v, want+" [")
		}
		if !found {
			t.Errorf("no leak with stack %q", want)
		}
	}
}

func TestUnwindAttachMode(t *testing.T) {
	requireRoot(t)
	exe := buildUnwindProgram(t, "deep.c", "gcc")
	truth := gdbStacks(t, exe)
	cmd := exec.Command(exe, "wait")
	p := testproc.Start(t, cmd)
	p.Expect(t, "ready")
	a := attach(t, cmd.Process.Pid, "--format", "json", "--interval", "1h")
	io.WriteString(p.Stdin, "go\n")
	p.Expect(t, "done")
	if code := a.stop(t); code != 23 {
		t.Fatalf("lsan exit %d, want 23\n%s", code, a.stderr.String())
	}
	reps := parseReports(t, a.stdout.String())
	checkAgainstGDB(t, lsanStacks(t, reps[len(reps)-1], exe), truth)
}

// TestUnwindFramePointersControl: the same program under --unwind fp does
// not get the stacks above (frame pointers are absent), so the tests above
// prove the CFI walk, not luck.
func TestUnwindFramePointersControl(t *testing.T) {
	requireRoot(t)
	exe := buildUnwindProgram(t, "deep.c", "gcc")
	cmd := exec.Command(lsan(t), "run", "--format", "json", "--unwind", "fp", "--", exe)
	var stdout strings.Builder
	cmd.Stdout = &stdout
	cmd.Run()
	reps := jsonReportsIn(t, stdout.String())
	for _, s := range joinStacks(lsanStacksLoose(reps[len(reps)-1], exe)) {
		if s == "deep_level3 < deep_level2 < deep_level1 < run_leaks < main" {
			t.Fatalf("frame pointers unwound a -fomit-frame-pointer stack: %q", s)
		}
	}
}

// lsanStacksLoose is lsanStacks without the checks on the frames.
func lsanStacksLoose(r jsonReport, exe string) [][]string {
	var out [][]string
	for _, g := range r.Leaks {
		var frames []string
		for _, f := range g.Stack {
			if f.Module == exe {
				frames = append(frames, f.Function)
			}
		}
		out = append(out, frames)
	}
	return out
}

// TestUnwindMuslStatic: a musl -static build. musl's libc.a has neither
// CFI nor frame pointers, so a stack through musl's getdelim or vasprintf
// cannot go on: it must end with a marker frame, never junk. Frames with
// CFI (the program's own) are exact.
func TestUnwindMuslStatic(t *testing.T) {
	requireRoot(t)
	exe := buildUnwindProgram(t, "deep.c", "musl-gcc", "-static")
	for _, mode := range []string{"auto", "cfi"} {
		cmd := exec.Command(lsan(t), "run", "--format", "json", "--unwind", mode, "--", exe)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err == nil {
			t.Fatalf("--unwind %s: no leak found\n%s", mode, stderr.String())
		}
		reps := jsonReportsIn(t, stdout.String())
		var got []string
		for _, g := range reps[len(reps)-1].Leaks {
			var names []string
			for i, f := range g.Stack {
				marker := strings.HasPrefix(f.Function, "[unwind stopped")
				if marker && i != len(g.Stack)-1 {
					t.Errorf("--unwind %s: marker inside a stack: %+v", mode, g.Stack)
				}
				if !marker && (f.Function == "" || f.Module != exe) {
					t.Errorf("--unwind %s: frame %+v is junk", mode, f)
				}
				names = append(names, f.Function)
			}
			got = append(got, strings.Join(names, " < "))
		}
		sort.Strings(got)
		stop := map[string]string{"auto": "[unwind stopped: no CFI, no frame pointer]", "cfi": "[unwind stopped: no CFI for the code]"}[mode]
		want := []string{
			"malloc < vasprintf < " + stop,
			"realloc < getdelim < " + stop,
			"strdup < deep_level3 < deep_level2 < deep_level1 < run_leaks < main < libc_start_main_stage2 < " + stop,
		}
		if !slices.Equal(got, want) {
			t.Errorf("--unwind %s: stacks:\n%s\nwant:\n%s", mode, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// checkStacksReachTop asserts that every group's stack reaches main or
// start_thread, or ends with a marker frame saying why not, and that no
// stack was dropped. It returns the number of groups.
func checkStacksReachTop(t *testing.T, r jsonReport) int {
	t.Helper()
	for _, g := range r.Leaks {
		top := false
		for i, f := range g.Stack {
			top = top || f.Function == "main" || f.Function == "start_thread" ||
				(i == len(g.Stack)-1 && strings.HasPrefix(f.Function, "[unwind stopped"))
		}
		if !top {
			t.Errorf("stack reaches neither main nor start_thread: %+v", g.Stack)
		}
	}
	if r.Dropped.Stacks != 0 || r.Dropped.Allocs != 0 {
		t.Errorf("dropped: %+v", r.Dropped)
	}
	return len(r.Leaks)
}

// TestUnwindDaemons: Debian's redis-server (jemalloc) and nginx, built
// without frame pointers, under load, outstanding mode with the default
// map sizes: every group's stack reaches main or start_thread, and no
// stack is dropped. (With frame pointers only, redis split into tens of
// thousands of groups with junk frames and dropped stacks.)
func TestUnwindDaemons(t *testing.T) {
	requireRoot(t)
	t.Run("redis", func(t *testing.T) {
		pid, port := startRedis(t)
		a := attach(t, pid, "--mode", "outstanding", "--format", "json", "--top", "0", "-i", "1h")
		redisBenchmark(t, port, 50000)
		a.stop(t)
		reps := parseReports(t, a.stdout.String())
		last := reps[len(reps)-1]
		n := checkStacksReachTop(t, last)
		if last.Stats.Allocs < 100000 || n == 0 || n > 1000 {
			t.Errorf("%d allocations, %d groups: want a loaded redis and a few hundred groups at most", last.Stats.Allocs, n)
		}
		t.Logf("redis: %d allocations, %d groups", last.Stats.Allocs, n)
	})
	t.Run("nginx", func(t *testing.T) {
		worker, port := startNginx(t)
		// nginx frees a request's blocks when it is done: checks during
		// the load see them live.
		a := attach(t, worker, "--mode", "outstanding", "--format", "json", "--top", "0", "-i", "500ms")
		served := httpLoad(t, port, 20000, 4*time.Second)
		a.stop(t)
		groups := 0
		for _, r := range parseReports(t, a.stdout.String()) {
			groups += checkStacksReachTop(t, r)
		}
		if groups == 0 {
			t.Errorf("no live block seen during the load")
		}
		t.Logf("nginx: %d requests, %d groups in all reports", served, groups)
	})
}

// TestUnwindRust: Rust built -C opt-level=2 (no frame pointers, rustc's
// default), leaks through Vec and Box into malloc via Rust's allocator
// shims: the program's frames are those of gdb's backtrace, in order, and
// the stacks reach the C main through std's runtime.
func TestUnwindRust(t *testing.T) {
	requireRoot(t)
	rustc := requireCommand(t, "rustc")
	exe := filepath.Join(t.TempDir(), "deeprs")
	if b, err := exec.Command(rustc, "-C", "opt-level=2", "-g", "-o", exe, filepath.Join("testdata", "unwind", "deep.rs")).CombinedOutput(); err != nil {
		t.Fatalf("rustc: %v\n%s", err, b)
	}
	ownFrames := func(frames []string) string {
		var out []string
		for _, f := range frames {
			if strings.HasPrefix(f, "deep::") {
				out = append(out, f)
			}
		}
		return strings.Join(out, " < ")
	}
	truth := map[string]bool{}
	for _, s := range gdbStacksFrom(t, exe, "deep::run_leaks", "deep::main") {
		truth[ownFrames(s)] = true
	}
	cmd := exec.Command(lsan(t), "run", "--format", "json", "--", exe)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err == nil {
		t.Fatalf("lsan run found no leak\n%s", stderr.String())
	}
	reps := jsonReportsIn(t, stdout.String())
	var got []string
	for _, g := range reps[len(reps)-1].Leaks {
		var frames []string
		reachesMain := false
		for _, f := range g.Stack {
			frames = append(frames, f.Function)
			reachesMain = reachesMain || (f.Function == "main" && f.Module == exe)
		}
		if !reachesMain {
			t.Errorf("stack does not reach main: %v", frames)
		}
		own := ownFrames(frames)
		if !truth[own] {
			t.Errorf("lsan stack %q is none of gdb's backtraces: %v", own, truth)
		}
		got = append(got, own)
	}
	sort.Strings(got)
	want := []string{
		"deep::level3 < deep::level2 < deep::level1 < deep::run_leaks < deep::main",
		"deep::run_leaks < deep::main",
	}
	if !slices.Equal(got, want) {
		t.Errorf("leak stacks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestUnwindDlopen: a library dlopened after attach gets its rows before
// its code runs (lsan run's process stops at the dynamic linker's hook
// until they are loaded): a leak made at once inside it has its whole
// stack.
func TestUnwindDlopen(t *testing.T) {
	requireRoot(t)
	lib, exe := buildPlugin(t)
	for _, mode := range []string{"auto", "cfi"} {
		// Outstanding mode: the plugin's block is live at exit whether or
		// not a stale copy of its pointer keeps it reachable.
		cmd := exec.Command(lsan(t), "run", "--mode", "outstanding", "--top", "0", "--format", "json", "--unwind", mode, "--", exe, lib)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("lsan run: %v\n%s", err, stderr.String())
		}
		reps := jsonReportsIn(t, stdout.String())
		checkPluginStacks(t, "--unwind "+mode, reps[len(reps)-1], lib, exe)
	}
}

// TestUnwindDlopenAttach: lsan -p does not stop the process it attached
// to for rows: the dynamic linker's hook only makes lsan load them at
// once, and a stack the probe walked before they were in (the plugin
// allocates as soon as dlopen returns) is walked again by lsan from the
// copy of the stack the probe sent. Either way the leak made inside the
// plugin has its whole stack.
func TestUnwindDlopenAttach(t *testing.T) {
	requireRoot(t)
	lib, exe := buildPlugin(t)
	for _, mode := range []string{"auto", "cfi"} {
		cmd := exec.Command(exe, lib, "wait")
		p := testproc.Start(t, cmd)
		p.Expect(t, "ready")
		a := attach(t, cmd.Process.Pid, "--mode", "outstanding", "--top", "0", "--format", "json", "--unwind", mode, "--interval", "1h")
		io.WriteString(p.Stdin, "go\n")
		p.Expect(t, "done")
		if code := a.stop(t); code != 0 {
			t.Fatalf("lsan exit %d, want 0\n%s", code, a.stderr.String())
		}
		reps := parseReports(t, a.stdout.String())
		last := reps[len(reps)-1]
		checkPluginStacks(t, "--unwind "+mode, last, lib, exe)
		if last.Stats.StacksCut != 0 {
			t.Errorf("--unwind %s: %d stack(s) cut", mode, last.Stats.StacksCut)
		}
		t.Logf("--unwind %s: %d stack(s) walked again by lsan", mode, last.Stats.StacksLate)
	}
}

// buildPlugin builds the plugin and the program that dlopens it, both
// -O2 -fomit-frame-pointer.
func buildPlugin(t *testing.T) (lib, exe string) {
	t.Helper()
	lib = filepath.Join(t.TempDir(), "libplugin.so")
	if b, err := exec.Command("gcc", "-O2", "-g", "-fomit-frame-pointer", "-shared", "-fPIC", "-o", lib, filepath.Join("testdata", "unwind", "plugin.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	return lib, buildUnwindProgram(t, "dlopen.c", "gcc")
}

// checkPluginStacks: the one group allocated inside the plugin has the
// plugin's and the program's frames up to _start, and no marker.
func checkPluginStacks(t *testing.T, what string, r jsonReport, lib, exe string) {
	t.Helper()
	var got []string
	for _, g := range r.Leaks {
		inPlugin := false
		for _, f := range g.Stack {
			inPlugin = inPlugin || f.Module == lib
		}
		if !inPlugin {
			continue // dlopen's own blocks
		}
		var names []string
		for _, f := range g.Stack {
			if f.Module == lib || f.Module == exe {
				names = append(names, f.Function)
			}
			if strings.HasPrefix(f.Function, "[unwind") {
				t.Errorf("%s: stack cut: %+v", what, g.Stack)
			}
		}
		got = append(got, strings.Join(names, " < "))
	}
	want := []string{"plugin_inner < plugin_outer < plugin_leak < call_plugin < main < _start"}
	if !slices.Equal(got, want) {
		t.Errorf("%s: stacks %q, want %q", what, got, want)
	}
}
