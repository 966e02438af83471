package main

import (
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/lsan-project/lsan/internal/lsanoptions"
	"github.com/lsan-project/lsan/session"
)

// lsanOptionFlags are LSAN_OPTIONS' root-set flags on the command line,
// under LSan's names; a flag given wins over LSAN_OPTIONS.
func lsanOptionFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "use-stacks", Value: true, Usage: "scan thread stacks for pointers (LSAN_OPTIONS use_stacks; =false leaves them out)"},
		&cli.BoolFlag{Name: "use-registers", Value: true, Usage: "scan thread registers (use_registers)"},
		&cli.BoolFlag{Name: "use-globals", Value: true, Usage: "scan the loaded modules' data and bss (use_globals)"},
		&cli.BoolFlag{Name: "use-tls", Value: true, Usage: "scan static thread-local storage (use_tls)"},
		&cli.BoolFlag{Name: "use-unaligned", Usage: "also take pointers at unaligned addresses, about 8x slower (use_unaligned)", DisableDefaultText: true},
		&cli.StringFlag{Name: "log-path", Usage: "write reports to `PATH`.PID instead of standard output (log_path)"},
	}
}

// lsanOptions reads LSAN_OPTIONS, so that setups made for LSan keep
// working; unknown flags are warned about once.
func lsanOptions() (lsanoptions.Options, error) {
	opts, warnings, err := lsanoptions.Parse(os.Getenv("LSAN_OPTIONS"))
	for _, w := range warnings {
		fmt.Fprintf(os.Stderr, "lsan: warning: %s\n", w)
	}
	return opts, err
}

// applyLSanOptions honours LSAN_OPTIONS and its command-line twins.
func applyLSanOptions(c *cli.Context, cfg *session.Config, opts lsanoptions.Options) {
	if opts.ReportObjects {
		cfg.ReportObjects = true
	}
	if opts.MaxLeaks > 0 && !c.IsSet("top") {
		cfg.Top = opts.MaxLeaks
	}
	if !opts.PrintSuppressions {
		cfg.HideSuppressionsUsed = true
	}
	use := func(flag string, fromEnv bool) bool {
		if c.IsSet(flag) {
			return c.Bool(flag)
		}
		return fromEnv
	}
	cfg.Scan.NoStacks = !use("use-stacks", opts.UseStacks)
	cfg.Scan.NoRegisters = !use("use-registers", opts.UseRegisters)
	cfg.Scan.NoGlobals = !use("use-globals", opts.UseGlobals)
	cfg.Scan.NoTLS = !use("use-tls", opts.UseTLS)
	cfg.Scan.ScanUnaligned = use("use-unaligned", opts.UseUnaligned)
	cfg.NoFinalCheck = !opts.LeakCheckAtExit
}

// openReports opens where reports go: -o, else LSAN_OPTIONS' log_path
// (--log-path) with the process id appended as LSan does (lsan run: one
// file per process, opened at its first report), else standard output.
func openReports(c *cli.Context, opts lsanoptions.Options) (io.Writer, func(), error) {
	if c.IsSet("output") {
		return openOutput(c.String("output"))
	}
	if c.IsSet("log-path") {
		opts.LogPath = c.String("log-path")
	}
	if pid := c.Int("pid"); pid > 0 || opts.ReportPath(0) == "" {
		return openOutput(opts.ReportPath(pid))
	}
	if opts.ReportPath(0) == "/dev/stderr" {
		return os.Stderr, func() {}, nil
	}
	pp := &perProcessFile{prefix: opts.LogPath}
	return pp, pp.close, nil
}

// exitCode is --exitcode, or LSAN_OPTIONS' exitcode when the flag is not
// given.
func exitCode(c *cli.Context) int {
	if !c.IsSet("exitcode") {
		if opts, _, err := lsanoptions.Parse(os.Getenv("LSAN_OPTIONS")); err == nil && opts.ExitCode != nil {
			return *opts.ExitCode
		}
	}
	return c.Int("exitcode")
}

// detectLeaksOff tells whether LSAN_OPTIONS turns leak detection off
// (detect_leaks=0): lsan then checks nothing, as LSan does.
func detectLeaksOff() bool {
	opts, _, err := lsanoptions.Parse(os.Getenv("LSAN_OPTIONS"))
	return err == nil && !opts.DetectLeaks
}

// perProcessFile writes each report to PREFIX.PID, the file LSan's log_path
// names for that process, opened on the first report of the process.
type perProcessFile struct {
	prefix string
	files  map[int]*os.File
	cur    *os.File
}

// use selects the file of pid for the next writes.
func (p *perProcessFile) use(pid int) error {
	if f, ok := p.files[pid]; ok {
		p.cur = f
		return nil
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", p.prefix, pid))
	if err != nil {
		return fmt.Errorf("open log_path file: %w", err)
	}
	if p.files == nil {
		p.files = map[int]*os.File{}
	}
	p.files[pid] = f
	p.cur = f
	return nil
}

func (p *perProcessFile) Write(b []byte) (int, error) {
	if p.cur == nil {
		return 0, fmt.Errorf("log_path: no process selected")
	}
	return p.cur.Write(b)
}

func (p *perProcessFile) close() {
	for _, f := range p.files {
		f.Close()
	}
}
