package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/lsan-project/lsan/bpf"
)

// benchRedis measures a real server: Debian's redis-server (jemalloc)
// under redis-benchmark on loopback, untraced and traced, in one run.
func benchRedis(requests int) error {
	cmd, port, err := startRedis()
	if cmd == nil || err != nil {
		return err
	}
	defer stopRedis(cmd)
	untraced, err := redisRPS(port, requests)
	if err != nil {
		return err
	}
	t, err := bpf.Attach(bpf.Options{PID: cmd.Process.Pid})
	if err != nil {
		return err
	}
	traced, err := redisRPS(port, requests)
	t.Close()
	if err != nil {
		return err
	}
	fmt.Printf("\nredis-server 7 (jemalloc), redis-benchmark -n %d -c 20 -d 100, requests per second:\n", requests)
	fmt.Printf("%-8s %12s %12s %8s\n", "test", "untraced", "traced", "ratio")
	for _, test := range []string{"SET", "GET", "LPUSH"} {
		u, tr := untraced[test], traced[test]
		fmt.Printf("%-8s %12.0f %12.0f %7.2fx\n", test, u, tr, tr/u)
	}
	return nil
}

// startRedis runs Debian's redis-server on a free loopback port, without
// persistence; nil when it is not installed (said so).
func startRedis(extra ...string) (*exec.Cmd, int, error) {
	server, err := exec.LookPath("redis-server")
	if err != nil {
		fmt.Println("\nredis: redis-server not installed, skipped")
		return nil, 0, nil
	}
	port, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}, extra...)
	cmd := exec.Command(server, args...)
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	if err := waitListening(port); err != nil {
		stopRedis(cmd)
		return nil, 0, err
	}
	return cmd, port, nil
}

func stopRedis(cmd *exec.Cmd) {
	cmd.Process.Kill()
	cmd.Wait()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitListening(port int) error {
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("redis did not listen on port %d", port)
}

// redisRPS runs redis-benchmark and returns requests per second by test.
func redisRPS(port, requests int) (map[string]float64, error) {
	out, err := exec.Command("redis-benchmark", "-p", strconv.Itoa(port), "-n", strconv.Itoa(requests),
		"-c", "20", "-d", "100", "-r", "100000", "-t", "set,get,lpush", "--csv").Output()
	if err != nil {
		return nil, fmt.Errorf("redis-benchmark: %w", err)
	}
	rows, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("parse redis-benchmark output: %w", err)
	}
	rps := map[string]float64{}
	for _, row := range rows[1:] {
		if len(row) >= 2 {
			v, _ := strconv.ParseFloat(row[1], 64)
			rps[strings.Fields(row[0])[0]] = v
		}
	}
	return rps, nil
}
