package bpf

import (
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/lsan-project/lsan/internal/testproc"
)

// buildNoFP compiles a test program as distributions do: -O2, no frame
// pointers.
func buildNoFP(t *testing.T, src string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(src), filepath.Ext(src)))
	if b, err := exec.Command("gcc", "-O2", "-g", "-fomit-frame-pointer", "-Wall", "-o", out, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", src, err, b)
	}
	return out
}

// exeFrames names the frames of b's stack that lie in the executable,
// innermost first, and the markers; other modules' frames are left out.
func exeFrames(tr *Tracer, st *symbolTable, b Block) []string {
	var out []string
	for i, pc := range tr.Stack(b) {
		if name, ok := MarkerName(pc); ok {
			out = append(out, name)
			continue
		}
		if i > 0 {
			pc--
		}
		if n := st.name(pc); n != "?" {
			out = append(out, n)
			if n == "main" { // where gdb's bt ends
				break
			}
		}
	}
	return out
}

// TestUnwindNoFramePointers: with CFI rows, the stacks of a -O2
// -fomit-frame-pointer program reach main, through the static functions
// and through glibc (strdup, getline, asprintf keep their callers); with
// frame pointers only, they stop early (the control).
func TestUnwindNoFramePointers(t *testing.T) {
	requireBPF(t)
	exe := buildNoFP(t, "testdata/deep.c")
	want := []string{
		"run_leaks main", // asprintf
		"run_leaks main", // getline
		"deep_level3 deep_level2 deep_level1 run_leaks main", // strdup
	}
	sort.Strings(want)
	for _, mode := range []UnwindMode{UnwindAuto, UnwindCFI} {
		t.Run(mode.String(), func(t *testing.T) {
			tg := startTarget(t, exe)
			tr, blocks, st := traceTrigger(t, tg, exe, Options{Unwind: mode})
			var got []string
			for _, b := range blocks {
				got = append(got, strings.Join(exeFrames(tr, st, b), " "))
			}
			sort.Strings(got)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("stacks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			s := tr.UnwindStats()
			if s.Walks == 0 || s.Cut() != 0 || s.Complete != s.Walks {
				t.Errorf("unwind stats %+v: want every walk complete", s)
			}
			if s.ModuleRows[exe] == 0 || s.ModuleRows["/usr/lib/x86_64-linux-gnu/libc.so.6"] == 0 {
				t.Errorf("rows per module %v: want the executable and libc", s.ModuleRows)
			}
			if s.Modules < 2 || s.Rows == 0 {
				t.Errorf("unwind stats %+v: want rows for the executable and libc", s)
			}
			t.Logf("stats: %+v", s)
		})
	}
	t.Run("fp", func(t *testing.T) {
		tg := startTarget(t, exe)
		tr, blocks, st := traceTrigger(t, tg, exe, Options{Unwind: UnwindFP})
		for _, b := range blocks {
			if f := exeFrames(tr, st, b); len(f) > 0 && f[len(f)-1] == "main" && len(f) == 5 {
				t.Errorf("frame pointers unwound a -fomit-frame-pointer stack completely: %v", f)
			}
		}
	})
}

// TestUnwindWalkCache: one malloc call site reached with the same stack
// pointer through two callers, alternately and in runs. The walk cache
// must answer the runs (Replays) and never give one caller's stack to
// the other's allocation (the sizes say which caller made each). At
// return probes and at exit probes (which read the return address
// through the walk's window).
func TestUnwindWalkCache(t *testing.T) {
	requireBPF(t)
	exe := buildNoFP(t, "testdata/walkcache.c")
	for _, opts := range []Options{{Unwind: UnwindAuto}, {Unwind: UnwindCFI}, {Unwind: UnwindCFI, ExitProbes: true}} {
		t.Run(fmt.Sprintf("%v,exit_probes=%v", opts.Unwind, opts.ExitProbes), func(t *testing.T) {
			tg := startTarget(t, exe)
			tr, blocks, st := traceTrigger(t, tg, exe, opts)
			counts := map[string]int{}
			for _, b := range blocks {
				got := strings.Join(exeFrames(tr, st, b), " ")
				want := "leaf via_a main"
				if b.Size >= 2000 {
					want = "leaf via_b main"
				}
				if got != want {
					t.Errorf("block of %d bytes: stack %q, want %q", b.Size, got, want)
				}
				counts[got]++
			}
			if len(blocks) != 256 {
				t.Errorf("%d blocks, want 256 (%v)", len(blocks), counts)
			}
			s := tr.UnwindStats()
			// Another tool's uretprobe on malloc (another test binary's
			// lsan) puts the trampoline where exit probes read the
			// call site: those walks are right but not kept.
			if (s.Replays < 100 && s.Trampolines == 0) || s.Cut() != 0 || s.Complete != s.Walks {
				t.Errorf("unwind stats %+v: want every walk complete, the runs replayed", s)
			}
			t.Logf("stats: %+v", s)
		})
	}
}

// TestUnwindWalkCachePrune: a walk the cache remembers whose stack
// PruneStacks deleted (its blocks were all freed) is not replayed with
// the deleted stack's id: the allocations after the prune have stacks.
func TestUnwindWalkCachePrune(t *testing.T) {
	requireBPF(t)
	exe := buildNoFP(t, "testdata/walkcache.c")
	tg := startTarget(t, exe)
	tr, err := Attach(Options{PID: tg.Pid(), Unwind: UnwindCFI})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	round := func(cmd string) {
		t.Helper()
		if _, err := io.WriteString(tg.Stdin, cmd+"\n"); err != nil {
			t.Fatal(err)
		}
		tg.Expect(t, "done")
	}
	round("free") // walks remembered, blocks freed: the stack is unreferenced
	for i := 0; i < 2; i++ {
		if _, err := tr.Blocks(tg.Pid()); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.PruneStacks(); err != nil {
			t.Fatal(err)
		}
	}
	round("keep") // the same walks
	blocks, err := tr.Blocks(tg.Pid())
	if err != nil {
		t.Fatal(err)
	}
	st := loadSymbols(t, tg.Pid(), exe)
	for _, b := range blocks {
		if got := strings.Join(exeFrames(tr, st, b), " "); got != "leaf via_a through_a main" {
			t.Errorf("block of %d bytes: stack %q, want leaf via_a through_a main", b.Size, got)
		}
	}
	if s := tr.UnwindStats(); len(blocks) != 64 || s.Replays == 0 {
		t.Errorf("%d blocks (want 64), stats %+v (want replays)", len(blocks), s)
	}
}

// TestMarkers: every marker is named, at its value and at value - 1 (where
// reports look callers up), and no user address is taken for one.
func TestMarkers(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range []uint64{MarkNoTable, MarkExpression, MarkRead, MarkDepth, MarkBadFrame, MarkStale} {
		for _, pc := range []uint64{m, m - 1} {
			got, name, ok := Marker(pc)
			if !ok || got != m {
				t.Errorf("Marker(%#x) = %#x, %q, %v; want %#x", pc, got, name, ok, m)
			}
		}
		name, _ := MarkerName(m)
		if seen[name] {
			t.Errorf("two markers named %q", name)
		}
		seen[name] = true
	}
	for _, pc := range []uint64{0, 0x401000, 0x7fffffffe000, 0xffffffffffffffff} {
		if _, ok := MarkerName(pc); ok {
			t.Errorf("%#x taken for a marker", pc)
		}
	}
}

// TestUnwindLateStack: a plugin dlopened after the attach allocates at
// once, before the loader has its rows (here it never polls, and ignores
// the linker's events): the probe meets code in no mapping it knows, sends
// the stack, and the tracer walks it again with the plugin's rows. The
// block's stack runs through the plugin's three frames to main, with no
// marker, in both CFI modes.
func TestUnwindLateStack(t *testing.T) {
	requireBPF(t)
	dir := t.TempDir()
	lib := filepath.Join(dir, "lateplugin.so")
	if b, err := exec.Command("gcc", "-O2", "-g", "-fomit-frame-pointer", "-shared", "-fPIC", "-o", lib, "testdata/lateplugin.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	exe := buildNoFP(t, "testdata/late.c")
	for _, mode := range []UnwindMode{UnwindAuto, UnwindCFI} {
		t.Run(mode.String(), func(t *testing.T) {
			tg := &target{testproc.Start(t, exec.Command(exe, lib))}
			tg.Expect(t, "ready")
			tr, blocks, st := traceTrigger(t, tg, exe, Options{Unwind: mode, lateRowsOnly: true})
			var plugin *Block
			for i := range blocks {
				if blocks[i].Size == 4242 {
					plugin = &blocks[i]
				}
			}
			if plugin == nil {
				t.Fatalf("no 4242-byte block among %d", len(blocks))
			}
			lo, hi := mappedRange(t, tg.Pid(), lib)
			inPlugin := 0
			for _, pc := range tr.Stack(*plugin)[1:] {
				if pc >= lo && pc < hi {
					inPlugin++
				}
			}
			if got := strings.Join(exeFrames(tr, st, *plugin), " "); inPlugin != 3 || got != "call_plugin main" {
				t.Errorf("stack %x: %d frames in the plugin, %q in the executable; want 3 and \"call_plugin main\"", tr.Stack(*plugin), inPlugin, got)
			}
			s := tr.UnwindStats()
			if s.Late == 0 || s.LateWalked != s.Late || s.LateDropped != 0 || s.LateFixed == 0 || s.Cut() != 0 {
				t.Errorf("unwind stats %+v: want late stacks, all walked again, the cut ones fixed", s)
			}
		})
	}
}

// mappedRange is the span of pid's mappings of path.
func mappedRange(t *testing.T, pid int, path string) (lo, hi uint64) {
	t.Helper()
	objs, err := mappedObjects(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.Path == path {
			return o.Start, o.End
		}
	}
	t.Fatalf("%s is not mapped in pid %d", path, pid)
	return 0, 0
}
