package scanner

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// expectedClass maps a program's label to the class Check must give.
func expectedClass(t testing.TB, b labeledBlock, exact bool) Class {
	switch b.class {
	case "direct":
		return Direct
	case "indirect":
		return Indirect
	case "reach":
		return Reachable
	case "slackref":
		// Pointed to only past its requested size, within its usable size.
		if exact {
			return Direct
		}
		return Reachable
	}
	t.Fatalf("unknown label %s:%s", b.class, b.name)
	return 0
}

// checkLabels runs Check on the target with its tracked blocks and
// compares every block's class with its label.
func checkLabels(t *testing.T, tg *target, opts Options) *Result {
	t.Helper()
	tracked := tg.tracked()
	res, err := Check(tg.pid, func() ([]Block, error) { return plainBlocks(tracked), nil }, opts)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	tg.assertRunning()
	if len(res.Classes) != len(tracked) {
		t.Fatalf("%d classes for %d blocks", len(res.Classes), len(tracked))
	}
	for i, b := range tracked {
		want := expectedClass(t, b, opts.ExactBounds)
		if got := res.Classes[i]; got != want {
			t.Errorf("%s:%s at %#x (size %d): got %v, want %v", b.class, b.name, b.Addr, b.Size, got, want)
		}
	}
	t.Logf("stats: %+v", res.Stats)
	return res
}

func TestCheckGlibc(t *testing.T) {
	tg := startTarget(t, program(t, "leaks"), nil)
	res := checkLabels(t, tg, Options{Allocator: Glibc})
	if res.Stats.Threads != 6 {
		t.Errorf("Threads = %d, want 6", res.Stats.Threads)
	}
	if res.Stats.BadHeaders != 0 {
		t.Errorf("BadHeaders = %d, want 0", res.Stats.BadHeaders)
	}
	if res.Stats.ScannedBytes == 0 || res.Stats.RootBytes == 0 {
		t.Errorf("nothing read: %+v", res.Stats)
	}
	// The 4 GiB sparse mapping was not read, save its one page.
	if res.Stats.UntouchedBytes < 4<<30-1<<20 || res.Stats.ScannedBytes > 1<<30 {
		t.Errorf("UntouchedBytes = %d, ScannedBytes = %d: the sparse mapping was read", res.Stats.UntouchedBytes, res.Stats.ScannedBytes)
	}
	t.Run("exact bounds", func(t *testing.T) {
		checkLabels(t, tg, Options{Allocator: Glibc, ExactBounds: true})
	})
	t.Run("proc mem", func(t *testing.T) {
		checkLabels(t, tg, Options{Allocator: Glibc, ForceProcMem: true})
	})
	t.Run("unaligned", func(t *testing.T) {
		checkLabels(t, tg, Options{Allocator: Glibc, ScanUnaligned: true})
	})
}

func TestCheckJemalloc(t *testing.T) {
	tg := startTarget(t, program(t, "leaks"), []string{"LD_PRELOAD=" + jemallocPath})
	res := checkLabels(t, tg, Options{Allocator: Jemalloc})
	if res.Stats.Threads != 6 {
		t.Errorf("Threads = %d, want 6", res.Stats.Threads)
	}
	t.Run("exact bounds", func(t *testing.T) {
		checkLabels(t, tg, Options{Allocator: Jemalloc, ExactBounds: true})
	})
}

// The usable sizes the scanner computes match malloc_usable_size, for
// glibc (from the chunk headers) and jemalloc (from the size classes).
func TestUsableSizesMatchAllocator(t *testing.T) {
	for _, tc := range []struct {
		name  string
		alloc Allocator
		env   []string
	}{
		{"glibc", Glibc, nil},
		{"jemalloc", Jemalloc, []string{"LD_PRELOAD=" + jemallocPath}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := startTarget(t, program(t, "leaks"), tc.env)
			rd, err := newProcessReader(tg.pid, false)
			if err != nil {
				t.Fatal(err)
			}
			defer rd.close()
			blocks := plainBlocks(tg.blocks)
			ix, bad, err := buildIndex(blocks, nil, Options{Allocator: tc.alloc}, rd)
			if err != nil {
				t.Fatal(err)
			}
			if bad != 0 {
				t.Errorf("%d bad headers", bad)
			}
			for k, i := range ix.orig {
				b := tg.blocks[i]
				if got := ix.scanEnd[k] - ix.starts[k]; got != b.usable {
					t.Errorf("%s:%s size %d: usable %d, malloc_usable_size says %d", b.class, b.name, b.Size, got, b.usable)
				}
			}
		})
	}
}

func TestCheckTargetExitsMidCheck(t *testing.T) {
	tg := startTarget(t, program(t, "leaks"), nil)
	_, err := Check(tg.pid, func() ([]Block, error) {
		if err := tg.cmd.Process.Kill(); err != nil {
			t.Errorf("kill: %v", err)
		}
		return plainBlocks(tg.tracked()), nil
	}, Options{Allocator: Glibc})
	if !errors.Is(err, ErrTargetExited) {
		t.Fatalf("Check = %v, want ErrTargetExited", err)
	}
	t.Logf("error: %v", err)
	tg.cmd.Wait()
	if tg.cmd.ProcessState == nil || tg.cmd.ProcessState.Exited() {
		t.Errorf("target state %v, want killed by SIGKILL", tg.cmd.ProcessState)
	}
}

// The same when the target is not our child: its threads die while
// traced, and its real parent (a shell here) must still get its status.
func TestCheckNonChildExitsMidCheck(t *testing.T) {
	tg := startTarget(t, "/bin/sh", nil, "-c", program(t, "leaks")+`; echo "status $?"`)
	var pid int
	for _, l := range tg.lines {
		fmt.Sscanf(l, "pid %d", &pid)
	}
	if pid == 0 || pid == tg.pid {
		t.Fatalf("target pid %d (shell %d)", pid, tg.pid)
	}
	_, err := Check(pid, func() ([]Block, error) {
		return nil, unix.Kill(pid, unix.SIGKILL)
	}, Options{})
	if !errors.Is(err, ErrTargetExited) {
		t.Fatalf("Check = %v, want ErrTargetExited", err)
	}
	if line := readLineTimeout(t, tg.out, 10*time.Second); strings.TrimSpace(line) != "status 137" {
		t.Fatalf("the shell said %q, want the SIGKILL status", line)
	}
}

func TestCheckMissingProcess(t *testing.T) {
	tg := startTarget(t, program(t, "leaks"), nil)
	pid := tg.pid
	tg.stop()
	_, err := Check(pid, func() ([]Block, error) { return nil, nil }, Options{})
	if !errors.Is(err, ErrTargetExited) {
		t.Fatalf("Check = %v, want ErrTargetExited", err)
	}
}

func TestCheckSnapshotError(t *testing.T) {
	tg := startTarget(t, program(t, "leaks"), nil)
	boom := errors.New("map read failed")
	_, err := Check(tg.pid, func() ([]Block, error) { return nil, boom }, Options{})
	if !errors.Is(err, boom) {
		t.Fatalf("Check = %v, want the snapshot's error", err)
	}
	tg.assertRunning()
}

func TestCheckSnapshotPanics(t *testing.T) {
	tg := startTarget(t, program(t, "leaks"), nil)
	_, err := Check(tg.pid, func() ([]Block, error) { panic("snapshot exploded") }, Options{})
	var pe *PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("Check = %v, want a PanicError", err)
	}
	if pe.Value != "snapshot exploded" || len(pe.Stack) == 0 {
		t.Errorf("PanicError = %v with %d bytes of stack", pe.Value, len(pe.Stack))
	}
	tg.assertRunning()
	// And the target can be checked again.
	checkLabels(t, tg, Options{Allocator: Glibc})
}
