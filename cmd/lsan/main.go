// Command lsan is an attachable leak sanitizer: it attaches to a running
// process with eBPF uprobes on its allocator and reports memory the process
// can no longer reach, in LeakSanitizer's format.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lsan-project/lsan/bpf"
	"github.com/lsan-project/lsan/internal/target"
	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/session"
	"github.com/lsan-project/lsan/symbolize"
)

// Exit statuses (CONTRACT.md).
const (
	exitError = 1
	exitUsage = 2
	// exitIncomplete: the last check ran on incomplete data (allocations
	// or frees lost, memory unreadable): its verdict, leaks or none,
	// cannot be trusted. The report says what was lost.
	exitIncomplete = 3
	// exitNoCheck: the target exited before any check ran (docs/usage.md).
	exitNoCheck = 4
)

func main() {
	if os.Getenv("GOGC") == "" {
		// A check holds every tracked block at once (a million blocks:
		// ~100 MiB of Go heap); collecting at 1.5x rather than 2x the live
		// heap keeps lsan's peak memory a quarter lower for little CPU.
		debug.SetGCPercent(50)
	}
	os.Exit(run(os.Args))
}

func run(args []string) (status int) {
	// A bug must still end in one line and status 1; the deferred detaches
	// of the probes and of ptrace have run by the time this recovers.
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "lsan: internal error: %v\n", r)
			status = exitError
		}
	}()
	app := newApp()
	err := app.Run(args)
	return exitStatus(err)
}

// newApp is the command line: its flags are also the source of the man
// page and the shell completions (lsan __man, lsan __fish-completion).
func newApp() *cli.App {
	return &cli.App{
		Name:    "lsan",
		Version: version,
		// Bash and zsh completion: completions/ asks lsan for the
		// candidates with --generate-bash-completion.
		EnableBashCompletion: true,
		// A repeatable flag's value is taken whole: --alloc-fn f:3,2 has
		// a comma of its own, and so may a path.
		DisableSliceFlagSeparator: true,
		Usage:                     "attachable leak sanitizer: find memory a running process can no longer reach",
		UsageText:                 "lsan -p PID [flags]",
		Flags:                     append(commonFlags(), attachFlags()...),
		Action:                    attachAction,
		Commands: append([]*cli.Command{{
			Name:      "run",
			Usage:     "start a command with every allocation tracked, and check for leaks when it exits",
			UsageText: "lsan run [flags] -- CMD [ARGS...]",
			Flags: append(commonFlags(), &cli.BoolFlag{
				Name:               "follow-forks",
				Usage:              "also track the children CMD forks (one report per process); without it they run untracked",
				DisableDefaultText: true,
			}, runIntervalFlag(), &cli.StringFlag{
				Name:  "tracer",
				Value: "inproc",
				Usage: "`HOW` allocations are recorded: inproc (a library lsan preloads into CMD records them, no kernel trap per call; uprobes where it cannot be loaded) or uprobe (kernel uprobes on the allocator)",
			}),
			Action: runAction,
			OnUsageError: func(_ *cli.Context, err error, _ bool) error {
				return usageError{err}
			},
		}, reportCommand()}, append(generatorCommands(), kernelCommand())...),
		HideHelpCommand: true,
		// Errors are printed once, by run, as one line.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
	}
}

// usageError marks mistakes in the command line (exit status 2).
type usageError struct{ error }

// leaksFound carries the --exitcode status when the last check found leaks.
type leaksFound struct{ code int }

func (l leaksFound) Error() string { return "leaks found" }

// incompleteData ends lsan with exitIncomplete; the report has said why.
type incompleteData struct{}

func (incompleteData) Error() string { return "check on incomplete data" }

func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	var lf leaksFound
	if errors.As(err, &lf) {
		return lf.code
	}
	if errors.As(err, &incompleteData{}) {
		fmt.Fprintln(os.Stderr, "lsan: the last check ran on incomplete data (see the report's warning): exit status 3")
		return exitIncomplete
	}
	var cs commandStatus
	if errors.As(err, &cs) {
		return cs.code
	}
	var ce commandError
	if errors.As(err, &ce) {
		fmt.Fprintf(os.Stderr, "lsan: %v\n", ce.err)
		return ce.code
	}
	if errors.Is(err, session.ErrNoCheck) {
		fmt.Fprintf(os.Stderr, "lsan: %v\n", err)
		return exitNoCheck
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(os.Stderr, "lsan: %v (see lsan --help)\n", ue.error)
		return exitUsage
	}
	fmt.Fprintf(os.Stderr, "lsan: %v\n", err)
	return exitError
}

// attachFlags are the flags of `lsan -p` alone.
func attachFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "pid", Aliases: []string{"p"}, Usage: "target process `PID`, or a comma-separated list of them (one report per process)"},
		&cli.StringFlag{Name: "comm", Usage: "trace every process whose command name is `NAME` (as in /proc/PID/comm, at most 15 characters), including those that start later"},
		&cli.DurationFlag{Name: "interval", Aliases: []string{"i"}, Value: defaultInterval, Usage: "`DURATION` between checks"},
		&cli.IntFlag{Name: "count", Aliases: []string{"n"}, Usage: "stop after `N` checks (0: until interrupted)"},
	}
}

// commonFlags are understood by `lsan -p` and `lsan run`.
func commonFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "mode", Value: "leaks", Usage: "`MODE` is leaks (reachability check) or outstanding (every live tracked block, grouped by stack)"},
		&cli.StringFlag{Name: "format", Value: "text", Usage: "report `FORMAT`: text, json, html or pprof (html and pprof rewrite -o FILE after each check)"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write reports to `FILE` instead of standard output"},
		&cli.StringSliceFlag{Name: "suppressions", Aliases: []string{"s"}, Usage: "LSan-format suppression `FILE` (repeatable; LSAN_OPTIONS=suppressions=FILE works too)"},
		&cli.BoolFlag{Name: "no-default-suppressions", Usage: "don't apply the built-in suppressions (docs/suppressions.md)", DisableDefaultText: true},
		&cli.BoolFlag{Name: "print-suppressions", Usage: "after each report, print a ready-to-paste suppression rule for every reported group", DisableDefaultText: true},
		&cli.IntFlag{Name: "exitcode", Value: 23, Usage: "exit status `N` (0-255) when the last check found unsuppressed leaks"},
		&cli.IntFlag{Name: "top", Usage: "show the `N` largest groups (0: all)", DefaultText: "10 in outstanding mode, all in leaks mode"},
		&cli.DurationFlag{Name: "older", Usage: "outstanding mode: hide blocks younger than `DURATION`"},
		&cli.BoolFlag{Name: "report-objects", Usage: "list the address and size of every reported block", DisableDefaultText: true},
		&cli.StringFlag{Name: "allocator", Usage: "probe the allocator in this `OBJECT` (path or file name, e.g. libjemalloc.so.2) instead of discovering it"},
		&cli.UintFlag{Name: "max-blocks", Usage: "capacity of the live-block map, in `BLOCKS`", DefaultText: "lsan -p: sized to the target; lsan run: " + strconv.Itoa(bpf.DefaultMaxBlocks)},
		&cli.UintFlag{Name: "max-stacks", Value: bpf.DefaultMaxStacks, Usage: "capacity of the stack map, in `STACKS`"},
		&cli.UintFlag{Name: "max-unwind-rows", Value: bpf.DefaultMaxUnwindRows, Usage: "capacity of the CFI unwind table, in `ROWS` of 8 bytes (files beyond it are walked by frame pointers; docs/unwind.md)"},
		&cli.StringFlag{Name: "probe-placement", Value: "auto", Usage: "`WHERE` is auto (each probe on the first instruction the kernel emulates: fast) or entry (at the function entry)"},
		&cli.StringFlag{Name: "return-probes", Value: "auto", Usage: "`HOW` allocator calls are seen to end: exit (probes on their ret instructions: plant no copy of the result on the stack), uretprobe (about 3x cheaper), auto (exit for lsan run, uretprobe for lsan -p)"},
		&cli.UintFlag{Name: "fork-copy-limit", Usage: "with --snapshot fork: when the target rewrites more than `MIB` of its memory while its copy is scanned (each such page is copied), the scan stops and the check stops the target instead", DefaultText: "half the memory available, and of the room under the target's memory cgroup limit"},
		&cli.StringFlag{Name: "snapshot", Value: "fork", EnvVars: []string{"LSAN_SNAPSHOT"}, Usage: "`HOW` a check freezes the target: fork (paused only to fork a copy-on-write copy, scanned while it runs on; a block found unreferenced in a copy is reported when the next check confirms it, the last check by a second copy taken at once; stop where forking cannot be done safely) or stop (stopped for every whole scan); lsan run always stops at the exit"},
		&cli.StringFlag{Name: "unwind", Value: "auto", Usage: "`HOW` stacks are unwound: auto (CFI tables, frame pointers where a module has none), fp, cfi"},
		&cli.UintFlag{Name: "sample-rate", Value: 1, Usage: "track 1 in `N` allocations (reports say they are sampled)"},
		&cli.StringSliceFlag{Name: "debug-dir", Usage: "extra `DIR` searched for separate debug info (repeatable)"},
		&cli.BoolFlag{Name: "no-demangle", Usage: "print C++ and Rust names as they are in the binary", DisableDefaultText: true},
	}, append(append(append(funcFlags(), lsanOptionFlags()...), timelineFlags()...), growthFlags()...)...)
}

const defaultInterval = 10e9

func attachAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", c.Args().First())}
	}
	if !c.IsSet("pid") && !c.IsSet("comm") {
		return usageError{errors.New("-p PID is required")}
	}
	var pids []int
	if c.IsSet("pid") {
		var err error
		if pids, err = parsePIDs(c.String("pid")); err != nil {
			return usageError{err}
		}
	}
	comm := c.String("comm")
	if c.IsSet("comm") && (comm == "" || len(comm) > 15 || strings.Contains(comm, "/")) {
		return usageError{fmt.Errorf("--comm %q: a command name is 1 to 15 characters, as the kernel keeps it (/proc/PID/comm)", comm)}
	}
	if c.Duration("interval") <= 0 {
		return usageError{fmt.Errorf("--interval must be positive")}
	}
	if c.Int("count") < 0 {
		return usageError{fmt.Errorf("--count must not be negative")}
	}
	if detectLeaksOff() {
		fmt.Fprintln(os.Stderr, "lsan: LSAN_OPTIONS has detect_leaks=0: no leak check")
		return nil
	}
	var targetExe string
	if len(pids) > 0 {
		targetExe, _ = os.Readlink(fmt.Sprintf("/proc/%d/exe", pids[0]))
	}
	cfg, closeOut, err := configFromFlags(c, targetExe)
	if err != nil {
		return err
	}
	defer closeOut()
	cfg.Interval = c.Duration("interval")
	cfg.Count = c.Int("count")
	need := target.NeedPtrace
	if cfg.Mode == report.ModeOutstanding {
		need = target.NeedBPF
	}
	if len(pids) != 1 || comm != "" {
		return checkFleet(cfg, need, pids, comm, exitCode(c))
	}
	cfg.PID = pids[0]
	if err := target.Check(cfg.PID, need); err != nil {
		return err
	}
	return attachAndCheck(cfg, exitCode(c))
}

// configFromFlags turns the flags into a session.Config; closeOut closes
// the -o file.
func configFromFlags(c *cli.Context, targetExe string) (session.Config, func(), error) {
	if err := validateFlags(c); err != nil {
		return session.Config{}, func() {}, err
	}
	warnMissingDebugDirs(c)
	cfg := session.Config{
		MinAge:        c.Duration("older"),
		ReportObjects: c.Bool("report-objects"),
		Tracer: bpf.Options{
			MaxBlocks:     uint32(c.Uint("max-blocks")),
			MaxStacks:     uint32(c.Uint("max-stacks")),
			MaxUnwindRows: uint32(c.Uint("max-unwind-rows")),
			Allocator:     c.String("allocator"),
			SampleRate:    uint32(c.Uint("sample-rate")),
		},
		Symbolize: symbolize.Options{DebugDirs: c.StringSlice("debug-dir"), NoDemangle: c.Bool("no-demangle")},
		Log:       func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) },
	}
	noop := func() {}
	funcs, err := userFuncs(c)
	if err != nil {
		return cfg, noop, err
	}
	cfg.Tracer.Funcs = funcs
	switch m := report.Mode(c.String("mode")); m {
	case report.ModeLeaks, report.ModeOutstanding:
		cfg.Mode = m
	default:
		return cfg, noop, usageError{fmt.Errorf("--mode %q: want leaks or outstanding", m)}
	}
	switch c.String("probe-placement") {
	case "auto":
		cfg.Tracer.Placement = bpf.PlaceAuto
	case "entry":
		cfg.Tracer.Placement = bpf.PlaceEntry
	default:
		return cfg, noop, usageError{fmt.Errorf("--probe-placement %q: want auto or entry", c.String("probe-placement"))}
	}
	switch c.String("return-probes") {
	case "auto":
	case "exit":
		cfg.ReturnProbes = session.ReturnExit
	case "uretprobe":
		cfg.ReturnProbes = session.ReturnUretprobe
	default:
		return cfg, noop, usageError{fmt.Errorf("--return-probes %q: want auto, exit or uretprobe", c.String("return-probes"))}
	}
	unwindMode, err := bpf.ParseUnwindMode(c.String("unwind"))
	if err != nil {
		return cfg, noop, usageError{fmt.Errorf("--unwind: %w", err)}
	}
	cfg.Tracer.Unwind = unwindMode
	switch c.String("snapshot") {
	case "fork":
		cfg.Snapshot = session.SnapshotFork
	case "stop":
		cfg.Snapshot = session.SnapshotStop
	default:
		return cfg, noop, usageError{fmt.Errorf("--snapshot %q: want fork or stop", c.String("snapshot"))}
	}
	cfg.Scan.CopyLimit = uint64(c.Uint("fork-copy-limit")) << 20
	if cfg.Tracer.SampleRate == 0 {
		return cfg, noop, usageError{fmt.Errorf("--sample-rate must be at least 1")}
	}
	cfg.Top = c.Int("top")
	if !c.IsSet("top") && cfg.Mode == report.ModeOutstanding {
		cfg.Top = 10 // as bcc's memleak
	}
	opts, err := lsanOptions()
	if err != nil {
		return cfg, noop, usageError{err}
	}
	applyLSanOptions(c, &cfg, opts)
	sup, err := loadSuppressions(c, opts, targetExe)
	if err != nil {
		return cfg, noop, err
	}
	cfg.Suppressions = sup
	cfg.SuggestSuppressions = c.Bool("print-suppressions")
	out, closeOut, err := openReports(c, opts)
	if err != nil {
		return cfg, noop, err
	}
	write, err := reportWriter(c, out)
	if err != nil {
		closeOut()
		return cfg, noop, usageError{err}
	}
	cfg.Write = write
	history, closeRec, err := historyFromFlags(c, cfg.Symbolize)
	if err != nil {
		closeOut()
		return cfg, noop, err
	}
	cfg.History = history
	closeOut = func(closeOut func()) func() { return func() { closeRec(); closeOut() } }(closeOut)
	if pp, ok := out.(*perProcessFile); ok {
		cfg.Write = func(r *report.Report) error {
			if err := pp.use(r.PID); err != nil {
				return err
			}
			return write(r)
		}
	}
	return cfg, closeOut, nil
}

func openOutput(path string) (io.Writer, func(), error) {
	if path == "" || path == "-" {
		return os.Stdout, func() {}, nil
	}

	f, err := os.Create(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open output: %w", err)
	}
	return f, func() { f.Close() }, nil
}

// interrupts follows the usual convention for SIGINT, SIGTERM and SIGHUP:
// the first cancels ctx (lsan checks once more and detaches), a second
// closes abort (the check in progress stops; the target is still resumed
// and detached).
func interrupts() (ctx context.Context, abort <-chan struct{}, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	aborted := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		seen := 0
		for {
			select {
			case <-sigs:
				seen++
				if seen == 1 {
					cancel()
				} else if seen == 2 {
					close(aborted)
				}
			case <-done:
				return
			}
		}
	}()
	return ctx, aborted, func() { signal.Stop(sigs); close(done); cancel() }
}

// attachAndCheck runs the session until --count, a signal or the target's
// exit, and detaches on every path.
func attachAndCheck(cfg session.Config, exitcode int) error {
	ctx, abort, stop := interrupts()
	defer stop()
	cfg.Abort = abort
	s, err := session.Attach(cfg)
	if err != nil {
		return err
	}
	announceFirstCheck(cfg.Interval, time.Now())
	leaks, err := s.Run(ctx)
	if cerr := s.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("detach: %w", cerr)
	}
	if err != nil {
		return err
	}
	if s.Incomplete() {
		return incompleteData{}
	}
	if leaks {
		return leaksFound{exitcode}
	}
	return nil
}

// announceFirstCheck says when the first check comes: with the default
// interval nothing else is printed for 10 s.
func announceFirstCheck(interval time.Duration, now time.Time) {
	fmt.Fprintf(os.Stderr, "lsan: first check in %v (at %s); Ctrl-C checks now and detaches, a second Ctrl-C aborts that check\n",
		interval, now.Add(interval).Format("15:04:05"))
}
