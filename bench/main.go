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

	"github.com/cilium/ebpf"
	"github.com/lsan-project/lsan/bpf"
	"golang.org/x/sys/unix"
)

func main() {
	pairs := flag.Int("pairs", 300_000, "malloc+free pairs per run")
	rounds := flag.Int("rounds", 5, "runs of each variant (the median is reported)")
	redisRequests := flag.Int("redis-requests", 50_000, "redis-benchmark requests per test (0: skip redis)")
	children := flag.Int("children", 200, "forked children per lsan run measurement (0: skip)")
	memory := flag.Bool("memory", true, "measure lsan's own memory per tracked block")
	memoryModes := flag.String("memory-modes", "run,checks,attach", "which of lsan's modes -memory measures: run (lsan run), checks (lsan run -i, checks while the program runs), attach (lsan -p)")
	snapshot := flag.Bool("snapshot", true, "measure the target's pause per check, --snapshot stop vs fork")
	kernelOps := flag.Int("kernel-ops", 100_000, "syscall loop iterations for lsan kernel's cost (0: skip)")
	loops := flag.Bool("loop", true, "the probes' cost on a malloc+free loop, variant by variant")
	loopFP := flag.Bool("loop-fp", true, "with -loop, also the loop built with frame pointers (the other is the unwinder's)")
	deep := flag.Bool("deep", false, "also the stack variants on a loop whose stacks are deep and change at every allocation")
	tracers := flag.Bool("tracers", true, "lsan run's tracers vs the command alone and preloaded LSan")
	flag.Parse()
	// The kernel's per-program run time: the BPF time per allocation.
	if stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err == nil {
		defer stats.Close()
	}
	var err error
	if *loops {
		err = run(*pairs, *rounds, *loopFP)
	}
	if err == nil && *deep {
		err = runDeep(*pairs, *rounds)
	}
	if err == nil && *tracers {
		err = benchTracers(*rounds)
	}
	if err == nil && *memory {
		err = benchMemory(*memoryModes)
	}
	if err == nil && *snapshot {
		err = benchSnapshot(3, *redisRequests*4)
	}
	if err == nil && *children > 0 {
		err = benchRun(*children, *rounds)
	}
	if err == nil && *kernelOps > 0 {
		err = benchKernel(*kernelOps, *rounds)
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

func run(pairs, rounds int, withFP bool) error {
	fp := bpf.UnwindFP
	if withFP {
		if err := runFP(pairs, rounds); err != nil {
			return err
		}
	}
	// Distributions' builds: no frame pointers. The figure the unwinder is
	// held to: placed probes with CFI stacks vs entry probes.
	noFP, err := buildLoop("mallocloop.c", "-fomit-frame-pointer")
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(noFP))
	return runBlock("loop built -O2 -fomit-frame-pointer", noFP, pairs, rounds, []variant{
		{name: "untraced"},
		{name: "traced, probes at entry", trace: true, opts: bpf.Options{Placement: bpf.PlaceEntry, Unwind: fp}},
		{name: "placed, fp stacks", trace: true, opts: bpf.Options{Unwind: fp}},
		{name: "placed, CFI stacks (auto)", trace: true, opts: bpf.Options{Unwind: bpf.UnwindAuto}},
		{name: "placed, CFI stacks (cfi)", trace: true, opts: bpf.Options{Unwind: bpf.UnwindCFI}},
		{name: "placed, without stacks", trace: true, opts: bpf.Options{SkipStacks: true}},
	})
}

// runFP is the loop built with frame pointers, where the probes' variants
// are compared.
func runFP(pairs, rounds int) error {
	loop, err := buildLoop("mallocloop.c", "-fno-omit-frame-pointer")
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(loop))
	fp := bpf.UnwindFP
	return runBlock("loop built -O2 -fno-omit-frame-pointer", loop, pairs, rounds, []variant{
		{name: "untraced"},
		{name: "traced, probes at entry", trace: true, opts: bpf.Options{Placement: bpf.PlaceEntry, Unwind: fp}},
		{name: "traced, placed probes", trace: true, opts: bpf.Options{Placement: bpf.PlaceAuto, Unwind: fp}},
		{name: "placed, exit probes", trace: true, opts: bpf.Options{ExitProbes: true, Unwind: fp}},
		{name: "placed, freed ranges (-p)", trace: true, opts: bpf.Options{TrackFreed: true, Unwind: fp}},
		{name: "placed, without stacks", trace: true, opts: bpf.Options{SkipStacks: true, Unwind: fp}},
		{name: "placed, entry probes only", trace: true, opts: bpf.Options{NoReturnProbes: true, Unwind: fp}},
		{name: "placed, perf-event links", trace: true, opts: bpf.Options{SingleLinks: true, Unwind: fp}},
		{name: "entry only, perf-event", trace: true, opts: bpf.Options{NoReturnProbes: true, SingleLinks: true, Unwind: fp}},
	})
}

// runBlock runs variants[0] (untraced) and [1] (entry probes, the
// reference) and the others, interleaved, and prints their medians.
func runBlock(title, loop string, pairs, rounds int, variants []variant) error {
	results := make([][]float64, len(variants))
	bpfNS := make([][]float64, len(variants))
	bpfPairNS := make([][]float64, len(variants))
	// Interleave the variants so that machine noise hits them alike.
	for r := 0; r < rounds; r++ {
		for i, v := range variants {
			ns, probeNS, pairNS, err := runLoop(loop, pairs, v)
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			results[i] = append(results[i], ns)
			bpfNS[i] = append(bpfNS[i], probeNS)
			bpfPairNS[i] = append(bpfPairNS[i], pairNS)
		}
	}
	base := median(results[0])
	entry := median(results[1]) - base
	fmt.Printf("%s: malloc+free pairs: %d per run, median of %d runs\n", title, pairs, rounds)
	fmt.Printf("%-28s %10s %14s %16s %18s %14s %14s\n", "variant", "ns/pair", "added ns/pair", "vs untraced", "added vs entry", "BPF ns/alloc", "BPF ns/pair")
	for i, v := range variants {
		m := median(results[i])
		fmt.Printf("%-28s %10.1f %14.1f %15.1fx %17.3fx %14.0f %14.0f\n", v.name, m, m-base, m/base, (m-base)/entry, median(bpfNS[i]), median(bpfPairNS[i]))
	}
	return nil
}

// runDeep is the CFI walk on stacks of 4 to 36 frames that change from one
// allocation to the next (deeploop.c): the walk cache rarely answers, and
// each walk reads several windows.
func runDeep(pairs, rounds int) error {
	deep, err := buildLoop("deeploop.c", "-fomit-frame-pointer")
	if err != nil {
		return err
	}
	defer os.RemoveAll(filepath.Dir(deep))
	fp := bpf.UnwindFP
	return runBlock("deep, varying stacks, -O2 -fomit-frame-pointer", deep, pairs/3, rounds, []variant{
		{name: "untraced"},
		{name: "traced, probes at entry", trace: true, opts: bpf.Options{Placement: bpf.PlaceEntry, Unwind: fp}},
		{name: "placed, fp stacks", trace: true, opts: bpf.Options{Unwind: fp}},
		{name: "placed, CFI stacks (auto)", trace: true, opts: bpf.Options{Unwind: bpf.UnwindAuto}},
		{name: "placed, CFI stacks (cfi)", trace: true, opts: bpf.Options{Unwind: bpf.UnwindCFI}},
		{name: "placed, without stacks", trace: true, opts: bpf.Options{SkipStacks: true}},
	})
}

func buildLoop(name, fpFlag string) (string, error) {
	dir, err := os.MkdirTemp("", "lsanbench")
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, strings.TrimSuffix(name, ".c"))
	src := filepath.Join(sourceDir(), name)
	// -O2 like real programs, with or without frame pointers.
	cmd := exec.Command("gcc", "-O2", fpFlag, "-o", out, src)
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

// runLoop runs the loop once, traced or not, and returns its ns per pair,
// the return probe's BPF run time per run (where stacks are taken), and
// the BPF run time of the entry, return and free probes per pair (0
// untraced or without BPF stats).
func runLoop(loop string, pairs int, v variant) (nsPerPair, probeNS, pairNS float64, err error) {
	cmd := exec.Command(loop, strconv.Itoa(pairs))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, err
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || line != "ready\n" {
		return 0, 0, 0, fmt.Errorf("loop said %q: %v", line, err)
	}
	var t *bpf.Tracer
	if v.trace {
		opts := v.opts
		opts.PID = cmd.Process.Pid
		if t, err = bpf.Attach(opts); err != nil {
			return 0, 0, 0, err
		}
		defer t.Close()
	}
	io.WriteString(stdin, "go\n")
	line, err := out.ReadString('\n')
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read result: %w", err)
	}
	if t != nil {
		if runs, ret, others, err := t.ProbeTimes(); err == nil && runs > 0 {
			probeNS = float64(ret.Nanoseconds()) / float64(runs)
			pairNS = float64((ret + others).Nanoseconds()) / float64(pairs)
		}
	}
	nsPerPair, err = strconv.ParseFloat(strings.TrimSpace(line), 64)
	return nsPerPair, probeNS, pairNS, err
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}
