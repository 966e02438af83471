package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// benchMemory measures lsan's own peak RSS (VmHWM) checking a program that
// holds N tracked blocks at its exit (all of them leaked: the worst case,
// every block reported), for a few N: the slope is lsan's memory per
// tracked block.
func benchMemory() error {
	dir, lsan, prog, err := buildWithLSan("manyblocks")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("\nlsan's peak RSS, lsan run on a program holding N leaked blocks at exit\n")
	fmt.Printf("%-12s %14s %20s\n", "blocks", "peak RSS MiB", "MiB per Mi blocks")
	var base float64
	for _, n := range []int{1, 1 << 18, 1 << 20, 1 << 21} {
		kib, err := peakRSS(lsan, "run", "--max-blocks", strconv.Itoa(4<<20), "--format", "json", "--", prog, strconv.Itoa(n))
		if err != nil {
			return err
		}
		mib := float64(kib) / 1024
		if n == 1 {
			base = mib
			fmt.Printf("%-12d %14.0f %20s\n", n, mib, "—")
			continue
		}
		fmt.Printf("%-12d %14.0f %20.0f\n", n, mib, (mib-base)/(float64(n)/(1<<20)))
	}
	return nil
}

// peakRSS runs lsan with args and returns its peak RSS in KiB: the
// ru_maxrss wait4 reports, which covers lsan and the command it ran and
// waited for, whichever took more (here lsan: the command holds only the
// blocks lsan checks). VmHWM polled while lsan ran missed what came after
// the last poll: a run of one block read 21 to 31 MiB.
func peakRSS(lsan string, args ...string) (int, error) {
	cmd := exec.Command(lsan, args...)
	var exit *exec.ExitError
	if err := cmd.Run(); err != nil && !errors.As(err, &exit) {
		return 0, err
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, fmt.Errorf("%s: no resource usage", lsan)
	}
	return int(ru.Maxrss), nil
}
