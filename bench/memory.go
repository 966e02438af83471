package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// benchMemory measures lsan's own peak RSS checking a program that holds
// N tracked blocks at its exit, for a few N: the slope is lsan's memory
// per tracked block. All of them leaked is the worst case of the report
// (every block reported, each an edge from the array that held them);
// all of them reachable, that of the flood (every block reached from one).
func benchMemory() error {
	dir, lsan, prog, err := buildWithLSan("manyblocks")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Printf("\nlsan's peak RSS, lsan run on a program holding N blocks at exit, leaked or reachable\n")
	fmt.Printf("%-12s %14s %12s %14s %12s\n", "blocks", "leaked MiB", "per Mi", "reachable MiB", "per Mi")
	var base [2]float64
	for _, n := range []int{1, 1 << 18, 1 << 20, 1 << 21} {
		fmt.Printf("%-12d", n)
		for i, kind := range []string{"leaked", "reachable"} {
			kib, err := peakRSS(lsan, "run", "--max-blocks", strconv.Itoa(4<<20), "--format", "json", "--", prog, strconv.Itoa(n), kind)
			if err != nil {
				return err
			}
			mib := float64(kib) / 1024
			if n == 1 {
				base[i] = mib
				fmt.Printf(" %14.0f %12s", mib, "—")
				continue
			}
			fmt.Printf(" %14.0f %12.0f", mib, (mib-base[i])/(float64(n)/(1<<20)))
		}
		fmt.Println()
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
