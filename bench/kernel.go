package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lsan-project/lsan/ktrace"
)

// benchKernel measures what lsan kernel's tracer costs syscall-heavy
// code: each loop untraced and traced (machine-wide, as `lsan kernel`
// runs), alternating, in one run; the medians and their ratio.
func benchKernel(ops, rounds int) error {
	dir, err := os.MkdirTemp("", "lsanbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	loop := filepath.Join(dir, "syscallloop")
	src := filepath.Join(sourceDir(), "syscallloop.c")
	if b, err := exec.Command("gcc", "-O2", "-o", loop, src).CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %v\n%s", src, err, b)
	}
	fmt.Printf("\nlsan kernel: syscall-heavy loops, %d ops, median of %d (ns per op)\n", ops, rounds)
	fmt.Printf("%-28s %10s %10s %7s\n", "loop", "untraced", "traced", "ratio")
	for _, mode := range []struct{ name, arg string }{
		{"pipe ping-pong (round trip)", "pipe"},
		{"socket create+close", "socket"},
	} {
		var plain, traced []float64
		var counters ktrace.Counters
		for r := 0; r < rounds; r++ {
			ns, err := runSyscallLoop(loop, mode.arg, ops)
			if err != nil {
				return err
			}
			plain = append(plain, ns)
			t, err := ktrace.Open(ktrace.Options{})
			if err != nil {
				return err
			}
			ns, err = runSyscallLoop(loop, mode.arg, ops)
			if snap, serr := t.Snapshot(); serr == nil {
				counters = snap.Counters
			}
			t.Close()
			if err != nil {
				return err
			}
			traced = append(traced, ns)
		}
		p, tr := median(plain), median(traced)
		fmt.Printf("%-28s %10.0f %10.0f %6.2fx   (last traced round: %d allocations recorded, %d dropped, %d stacks dropped)\n",
			mode.name, p, tr, tr/p, counters.Allocs, counters.AllocDrops, counters.StackDrops)
	}
	return nil
}

func runSyscallLoop(loop, mode string, ops int) (float64, error) {
	out, err := exec.Command(loop, mode, strconv.Itoa(ops)).Output()
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", loop, mode, err)
	}
	return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
}
