package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// benchSnapshot measures what a leak check costs the target, stopped for
// the whole scan (--snapshot stop) against only while it forks the copy
// (--snapshot fork), on pointer-rich heaps of a few sizes, in one run.
func benchSnapshot(rounds, redisRequests int) (err error) {
	dir, lsan, prog, err := buildWithLSan("pointerheap")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	defer func() {
		if err == nil && redisRequests > 0 {
			err = benchRedisSnapshot(lsan, redisRequests)
		}
	}()
	fmt.Printf("\nLeak check of a pointer-rich heap, lsan -p -n 1: target pause and whole check, median of %d;\n", rounds)
	fmt.Printf("raw fork: the same program's own first fork() of the same heap (the kernel's part of the fork pause)\n")
	fmt.Printf("%-10s %14s %14s %14s %14s %12s %12s %14s\n", "heap", "stop pause ms", "stop check ms", "fork pause ms", "fork check ms", "pause ratio", "raw fork ms", "pause/raw fork")
	for _, mib := range []int{256, 1024, 4096} {
		var stop, fork checkCost
		for _, mode := range []string{"stop", "fork"} {
			c, err := medianCheck(lsan, prog, mib, mode, rounds)
			if err != nil {
				return err
			}
			if mode == "stop" {
				stop = c
			} else {
				fork = c
			}
		}
		raw, err := medianRawFork(prog, mib, rounds)
		if err != nil {
			return err
		}
		fmt.Printf("%-10s %14.1f %14.1f %14.1f %14.1f %11.3fx %12.1f %13.2fx\n", fmt.Sprintf("%d MiB", mib),
			stop.pausedMS, stop.checkMS, fork.pausedMS, fork.checkMS, fork.pausedMS/stop.pausedMS, raw, fork.pausedMS/raw)
	}
	return nil
}

// medianRawFork runs the heap program in its fork mode: it times its own
// first fork() and exits.
func medianRawFork(prog string, mib, rounds int) (float64, error) {
	var ms []float64
	for r := 0; r < rounds; r++ {
		out, err := exec.Command(prog, strconv.Itoa(mib), "fork").Output()
		if err != nil {
			return 0, fmt.Errorf("%s %d fork: %v", prog, mib, err)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
		if err != nil {
			return 0, fmt.Errorf("%s %d fork: %q", prog, mib, out)
		}
		ms = append(ms, v)
	}
	return median(ms), nil
}

type checkCost struct{ pausedMS, checkMS float64 }

func medianCheck(lsan, prog string, mib int, mode string, rounds int) (checkCost, error) {
	var paused, check []float64
	for r := 0; r < rounds; r++ {
		c, err := oneCheck(lsan, prog, mib, mode)
		if err != nil {
			return checkCost{}, err
		}
		paused = append(paused, c.pausedMS)
		check = append(check, c.checkMS)
	}
	return checkCost{median(paused), median(check)}, nil
}

// oneCheck starts the heap program, runs one check on it and reads the
// report's stats.
func oneCheck(lsan, prog string, mib int, mode string) (checkCost, error) {
	target := exec.Command(prog, strconv.Itoa(mib))
	out, err := target.StdoutPipe()
	if err != nil {
		return checkCost{}, err
	}
	if err := target.Start(); err != nil {
		return checkCost{}, err
	}
	defer func() { target.Process.Kill(); target.Wait() }()
	if line, _ := bufio.NewReader(out).ReadString('\n'); strings.TrimSpace(line) != "ready" {
		return checkCost{}, fmt.Errorf("%s: no ready line", prog)
	}
	out2, err := exec.Command(lsan, "-p", strconv.Itoa(target.Process.Pid), "-n", "1", "-i", "10ms",
		"--snapshot", mode, "--format", "json").Output()
	if err != nil {
		return checkCost{}, fmt.Errorf("lsan --snapshot %s: %v", mode, err)
	}
	rep, _, _ := strings.Cut(string(out2), "\n")
	var r struct {
		Stats struct {
			PausedMS float64 `json:"paused_ms"`
			CheckMS  float64 `json:"check_ms"`
			Snapshot string  `json:"snapshot"`
		} `json:"stats"`
	}
	if err := json.Unmarshal([]byte(rep), &r); err != nil {
		return checkCost{}, err
	}
	if r.Stats.Snapshot != mode {
		return checkCost{}, fmt.Errorf("asked --snapshot %s, got %q", mode, r.Stats.Snapshot)
	}
	return checkCost{r.Stats.PausedMS, r.Stats.CheckMS}, nil
}
