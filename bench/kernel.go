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
	fmt.Printf("%-28s %10s %10s %7s %12s %7s\n", "loop", "untraced", "traced", "ratio", "--no-stacks", "ratio")
	for _, mode := range []struct{ name, arg string }{
		{"pipe ping-pong (round trip)", "pipe"},
		{"socket create+close", "socket"},
	} {
		var plain, traced, noStacks []float64
		var counters ktrace.Counters
		for r := 0; r < rounds; r++ {
			ns, err := runSyscallLoop(loop, mode.arg, ops)
			if err != nil {
				return err
			}
			plain = append(plain, ns)
			ns, c, err := tracedSyscallLoop(loop, mode.arg, ops, ktrace.Options{})
			if err != nil {
				return err
			}
			traced, counters = append(traced, ns), c
			if ns, _, err = tracedSyscallLoop(loop, mode.arg, ops, ktrace.Options{NoStacks: true}); err != nil {
				return err
			}
			noStacks = append(noStacks, ns)
		}
		p, tr, ns := median(plain), median(traced), median(noStacks)
		fmt.Printf("%-28s %10.0f %10.0f %6.2fx %12.0f %6.2fx   (last traced round: %d allocations recorded, %d dropped, %d stacks dropped)\n",
			mode.name, p, tr, tr/p, ns, ns/p, counters.Allocs, counters.AllocDrops, counters.StackDrops)
	}
	return nil
}

// tracedSyscallLoop runs the loop once under the kernel tracer.
func tracedSyscallLoop(loop, mode string, ops int, opts ktrace.Options) (float64, ktrace.Counters, error) {
	t, err := ktrace.Open(opts)
	if err != nil {
		return 0, ktrace.Counters{}, err
	}
	defer t.Close()
	ns, err := runSyscallLoop(loop, mode, ops)
	var c ktrace.Counters
	if snap, serr := t.Snapshot(); serr == nil {
		c = snap.Counters
	}
	return ns, c, err
}

func runSyscallLoop(loop, mode string, ops int) (float64, error) {
	out, err := exec.Command(loop, mode, strconv.Itoa(ops)).Output()
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", loop, mode, err)
	}
	return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
}
