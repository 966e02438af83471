package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
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

// peakRSS runs lsan with args and returns its VmHWM in KiB, read just
// before it exits.
func peakRSS(lsan string, args ...string) (int, error) {
	cmd := exec.Command(lsan, args...)
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	peak := 0
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		if kib := vmHWM(cmd.Process.Pid); kib > peak {
			peak = kib
		}
		select {
		case <-done:
			return peak, nil
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func vmHWM(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			return n
		}
	}
	return 0
}
