package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/lsan-project/lsan/internal/target"
	"github.com/lsan-project/lsan/kernel"
	"github.com/lsan-project/lsan/ktrace"
	"github.com/lsan-project/lsan/suppressions"
	"github.com/lsan-project/lsan/symbolize"
)

// kernelCommand is `lsan kernel`: live kernel objects by kernel stack.
func kernelCommand() *cli.Command {
	return &cli.Command{
		Name:      "kernel",
		Usage:     "report live kernel objects (kmem and percpu tracepoints) grouped by kernel stack, and the kernel memory each process holds",
		UsageText: "lsan kernel [--older D] [--pid P | --comm NAME] [--cache NAME] [--min-size N] [flags]",
		Flags:     kernelFlags(),
		Action:    kernelAction,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
	}
}

func kernelFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.IntFlag{Name: "pid", Aliases: []string{"p"}, Usage: "only objects this `PID` (a process) allocated; recorded in the kernel for it alone", DefaultText: "every process"},
		&cli.StringFlag{Name: "comm", Usage: "only objects allocated by tasks named `NAME` (as in /proc/PID/comm)"},
		&cli.StringFlag{Name: "cache", Usage: "only objects of the slab cache `NAME` (filp, dentry, sock_inode_cache …; kmalloc objects have no cache name)"},
		&cli.Uint64Flag{Name: "min-size", Usage: "only objects of at least `N` requested bytes"},
		&cli.DurationFlag{Name: "older", Usage: "hide objects younger than `DURATION`"},
		&cli.DurationFlag{Name: "interval", Aliases: []string{"i"}, Value: defaultInterval, Usage: "`DURATION` between checks"},
		&cli.IntFlag{Name: "count", Aliases: []string{"n"}, Usage: "stop after `N` checks (0: until interrupted)"},
		&cli.StringFlag{Name: "format", Value: "text", Usage: "report `FORMAT`: text, json, html or pprof (html and pprof rewrite -o FILE after each check)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write reports to `FILE` instead of standard output"},
		&cli.StringSliceFlag{Name: "suppressions", Aliases: []string{"s"}, Usage: "LSan-format suppression `FILE` matched against kernel function and module names (repeatable)"},
		&cli.IntFlag{Name: "top", Value: 10, Usage: "show the `N` largest groups (0: all)"},
		&cli.BoolFlag{Name: "report-objects", Usage: "list every object's address, size, pid and age", DisableDefaultText: true},
		&cli.UintFlag{Name: "sample-rate", Value: 1, Usage: "track 1 in `N` allocations (reports say they are sampled)"},
		&cli.BoolFlag{Name: "no-stacks", Usage: "don't walk kernel stacks (most of the cost): group objects by the function that called the allocator", DisableDefaultText: true},
		&cli.UintFlag{Name: "max-objects", Value: ktrace.DefaultMaxObjects, Usage: "capacity of the live-object map, in `OBJECTS` (preallocated, ~140 bytes each)"},
		&cli.UintFlag{Name: "max-stacks", Value: ktrace.DefaultMaxStacks, Usage: "capacity of the kernel stack map, in `STACKS`"},
		&cli.StringFlag{Name: "record", Usage: "append every check as a snapshot, with its symbolized kernel frames, to `FILE` (lsan report FILE renders it; docs/recording.md)"},
	}, kernelGrowthFlags()...)
}

// kernelGrowthFlags are the growth flags of lsan -p and lsan run but
// --baseline (a baseline is matched against a process's reports).
func kernelGrowthFlags() []cli.Flag {
	var out []cli.Flag
	for _, f := range growthFlags() {
		if f.Names()[0] != "baseline" {
			out = append(out, f)
		}
	}
	return out
}

func kernelAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", c.Args().First())}
	}
	cfg, err := kernelConfig(c)
	if err != nil {
		return err
	}
	if err := target.CheckKernel(); err != nil {
		return err
	}
	out, closeOut, err := openOutput(c.String("output"))
	if err != nil {
		return err
	}
	defer closeOut()
	cfg.Write, err = kernelWriter(c, out)
	if err != nil {
		return err
	}
	var closeRec func()
	cfg.History, closeRec, err = historyFromFlags(c, symbolize.Options{})
	if err != nil {
		return err
	}
	defer closeRec()
	// Offline there is no /proc/kallsyms of this boot to symbolize with.
	cfg.History.RecordSymbols = true
	ctx, _, stop := interrupts()
	defer stop()
	return kernel.Run(ctx, cfg)
}

// kernelWriter writes text and json in lsan kernel's own layout (cache,
// attribution, events), html and pprof through the formats every mode
// shares.
func kernelWriter(c *cli.Context, out io.Writer) (func(*kernel.Report) error, error) {
	switch format := c.String("format"); format {
	case "html", "pprof":
		write, err := reportWriter(c, out)
		if err != nil {
			return nil, usageError{err}
		}
		return func(r *kernel.Report) error { return write(r.Model) }, nil
	default:
		write, err := kernel.Writer(out, format)
		if err != nil {
			return nil, usageError{err}
		}
		return write, nil
	}
}

// kernelConfig validates the flags (usage errors) and builds the run.
func kernelConfig(c *cli.Context) (kernel.Config, error) {
	var cfg kernel.Config
	if err := inRange(c, "sample-rate", 1, 1<<31, "1 tracks every allocation"); err != nil {
		return cfg, err
	}
	if err := inRange(c, "max-objects", 1, maxMaxBlocks, "the object map needs room for at least one object"); err != nil {
		return cfg, err
	}
	if err := inRange(c, "max-stacks", 1, maxMaxStacks, "the stack map needs room for at least one stack"); err != nil {
		return cfg, err
	}
	if n := c.Int("top"); n < 0 {
		return cfg, usageError{fmt.Errorf("--top %d: want a count of groups, 0 for all", n)}
	}
	if d := c.Duration("older"); d < 0 {
		return cfg, usageError{fmt.Errorf("--older %v: an age cannot be negative", d)}
	}
	if c.Duration("interval") <= 0 {
		return cfg, usageError{errors.New("--interval must be positive")}
	}
	if c.Int("count") < 0 {
		return cfg, usageError{errors.New("--count must not be negative")}
	}
	pid := c.Int("pid")
	if c.IsSet("pid") && pid <= 0 {
		return cfg, usageError{fmt.Errorf("--pid %d: a process ID is a positive number", pid)}
	}
	if c.IsSet("pid") && c.IsSet("comm") {
		return cfg, usageError{errors.New("--pid and --comm: give one of them")}
	}
	if c.IsSet("pid") {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return cfg, fmt.Errorf("no process with pid %d", pid)
		}
	}
	sup, warnings, err := suppressions.LoadFiles(c.StringSlice("suppressions")...)
	if err != nil {
		return cfg, err
	}
	for _, w := range warnings {
		fmt.Fprintf(os.Stderr, "lsan: warning: %s\n", w)
	}
	cfg = kernel.Config{
		Tracer: ktrace.Options{
			MaxObjects: uint32(c.Uint("max-objects")), MaxStacks: uint32(c.Uint("max-stacks")),
			SampleRate: uint32(c.Uint("sample-rate")), PID: uint32(pid), NoStacks: c.Bool("no-stacks"),
			KernelBTF: os.Getenv("LSAN_KERNEL_BTF"),
		},
		Filter: kernel.Filter{
			PID: uint32(pid), Comm: c.String("comm"), Cache: c.String("cache"),
			MinSize: c.Uint64("min-size"), MinAge: c.Duration("older"),
		},
		Interval: c.Duration("interval"), Count: c.Int("count"), Top: c.Int("top"),
		ReportObjects: c.Bool("report-objects"), Suppressions: sup,
		Log: func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) },
	}
	return cfg, nil
}
