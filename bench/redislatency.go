package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// benchRedisSnapshot measures what periodic leak checks do to a server's
// tail latency: Debian's redis-server holding ~1 GiB of keys, GET load
// from redis-benchmark, lsan -p checking every second with --snapshot
// stop, then fork, against no checks, in one run.
func benchRedisSnapshot(lsan string, requests int) error {
	cmd, port, err := startRedis("--enable-debug-command", "yes")
	if cmd == nil || err != nil {
		return err
	}
	defer stopRedis(cmd)
	// DEBUG POPULATE: 4 M keys of 200 bytes, about 1 GiB of heap.
	if out, err := exec.Command("redis-cli", "-p", strconv.Itoa(port), "DEBUG", "POPULATE", "4000000", "key", "200").CombinedOutput(); err != nil {
		return fmt.Errorf("populate redis: %v %s", err, out)
	}
	fmt.Printf("\nredis-server (~1 GiB of keys), GET latency under redis-benchmark -n %d -c 20, lsan -p checking every second:\n", requests)
	fmt.Printf("%-22s %10s %10s %10s %10s\n", "checks", "rps", "p50 ms", "p99 ms", "max ms")
	for _, mode := range []string{"none", "stop", "fork"} {
		var l *exec.Cmd
		if mode != "none" {
			l = exec.Command(lsan, "-p", strconv.Itoa(cmd.Process.Pid), "-i", "1s", "--snapshot", mode, "--format", "json", "-o", os.DevNull)
			if err := l.Start(); err != nil {
				return err
			}
			time.Sleep(3 * time.Second) // attached, first check under way
		}
		row, err := redisLatency(port, requests)
		if l != nil {
			l.Process.Signal(syscall.SIGINT)
			l.Wait()
		}
		if err != nil {
			return err
		}
		fmt.Printf("%-22s %10s %10s %10s %10s\n", "--snapshot "+mode, row[1], row[4], row[6], row[7])
	}
	return nil
}

// redisLatency runs a GET benchmark and returns redis-benchmark's CSV row:
// test, rps, avg, min, p50, p95, p99, max.
func redisLatency(port, requests int) ([]string, error) {
	out, err := exec.Command("redis-benchmark", "-p", strconv.Itoa(port), "-n", strconv.Itoa(requests),
		"-c", "20", "-r", "4000000", "-t", "get", "--csv").Output()
	if err != nil {
		return nil, fmt.Errorf("redis-benchmark: %w", err)
	}
	rows, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil || len(rows) < 2 || len(rows[1]) < 8 {
		return nil, fmt.Errorf("parse redis-benchmark output %q: %v", out, err)
	}
	return rows[1], nil
}
