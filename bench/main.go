// Command bench measures what lsan costs the process it traces: the added
// time per malloc+free pair on a malloc-heavy loop, untraced vs traced; what
// lsan run adds per run and per forked child; redis throughput. All in one
// run (the machines are noisy: compare ratios, not absolute times).
//
//	make bench   (or: go run ./bench)
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/lsan-project/lsan/bpf"
)

func main() {
	pairs := flag.Int("pairs", 300_000, "malloc+free pairs per run")
	rounds := flag.Int("rounds", 5, "runs of each variant (the median is reported)")
	redisRequests := flag.Int("redis-requests", 50_000, "redis-benchmark requests per test (0: skip redis)")
	children := flag.Int("children", 200, "forked children per lsan run measurement (0: skip)")
	memory := flag.Bool("memory", true, "measure lsan's own memory per tracked block")
	flag.Parse()
	err := run(*pairs, *rounds)
	if err == nil && *memory {
		err = benchMemory()
	}
	if err == nil && *children > 0 {
		err = benchRun(*children, *rounds)
	}
	if err == nil && *redisRequests > 0 {
		err = benchRedis(*redisRequests)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// variant is one way of running the loop.
type variant struct {
	name  string
	trace bool
	opts  bpf.Options
}

func run(pairs, rounds int) error {
	loop, err := buildLoop()
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(loop))
	variants := []variant{
		{name: "untraced"},
		{name: "traced, probes at entry", trace: true, opts: bpf.Options{Placement: bpf.PlaceEntry}},
		{name: "traced, placed probes", trace: true, opts: bpf.Options{Placement: bpf.PlaceAuto}},
		{name: "placed, freed ranges (-p)", trace: true, opts: bpf.Options{TrackFreed: true}},
		{name: "placed, without stacks", trace: true, opts: bpf.Options{SkipStacks: true}},
		{name: "placed, entry probes only", trace: true, opts: bpf.Options{NoReturnProbes: true}},
		{name: "placed, perf-event links", trace: true, opts: bpf.Options{SingleLinks: true}},
		{name: "entry only, perf-event", trace: true, opts: bpf.Options{NoReturnProbes: true, SingleLinks: true}},
	}
	results := make([][]float64, len(variants))
	// Interleave the variants so that machine noise hits them alike.
	for r := 0; r < rounds; r++ {
		for i, v := range variants {
			ns, err := runLoop(loop, pairs, v)
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			results[i] = append(results[i], ns)
		}
	}
	base := median(results[0])
	entry := median(results[1]) - base
	fmt.Printf("malloc+free pairs: %d per run, median of %d runs\n", pairs, rounds)
	fmt.Printf("%-28s %10s %14s %16s %18s\n", "variant", "ns/pair", "added ns/pair", "vs untraced", "added vs entry")
	for i, v := range variants {
		m := median(results[i])
		fmt.Printf("%-28s %10.1f %14.1f %15.1fx %17.3fx\n", v.name, m, m-base, m/base, (m-base)/entry)
	}
	return nil
}

func buildLoop() (string, error) {
	dir, err := os.MkdirTemp("", "lsanbench")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "mallocloop")
	src := filepath.Join(sourceDir(), "mallocloop.c")
	// Frame pointers, as lsan's stacks need; -O2 like real programs.
	cmd := exec.Command("gcc", "-O2", "-fno-omit-frame-pointer", "-o", out, src)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", src, err, b)
	}
	return out, nil
}

func sourceDir() string {
	if _, err := os.Stat("bench/mallocloop.c"); err == nil {
		return "bench"
	}
	return "."
}

// runLoop runs the loop once, traced or not, and returns its ns per pair.
func runLoop(loop string, pairs int, v variant) (float64, error) {
	cmd := exec.Command(loop, strconv.Itoa(pairs))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
		return 0, fmt.Errorf("loop said %q: %v", line, err)
	}
	if v.trace {
		opts := v.opts
		opts.PID = cmd.Process.Pid
		t, err := bpf.Attach(opts)
		if err != nil {
			return 0, err
		}
		defer t.Close()
	}
	io.WriteString(stdin, "go\n")
	line, err := out.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("read result: %w", err)
	}
	return strconv.ParseFloat(strings.TrimSpace(line), 64)
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}
