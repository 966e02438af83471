package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lsan-project/lsan/baseline"
	"github.com/lsan-project/lsan/history"
	"github.com/lsan-project/lsan/record"
	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/report/html"
	"github.com/lsan-project/lsan/report/pprof"
	"github.com/lsan-project/lsan/session"
	"github.com/lsan-project/lsan/suppressions"
	"github.com/lsan-project/lsan/symbolize"
	"github.com/lsan-project/lsan/timeline"
)

// timelineFlags are the flags of the series across checks, shared by
// lsan -p, lsan run and lsan report (except --record and
// --record-symbols, which lsan report has no use for).
func timelineFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "record", Usage: "append every check as a snapshot to `FILE` (lsan report FILE renders it; docs/recording.md)"},
		&cli.BoolFlag{Name: "record-symbols", Usage: "with --record: store symbolized frames too, to read the recording where the binaries and debug info are absent", DisableDefaultText: true},
	}
}

func growthFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "growth-window", Value: timeline.DefaultWindow, Usage: "a group is growing when its bytes rose in each of the last `K` checks"},
		&cli.Uint64Flag{Name: "growth-min", Value: 1, Usage: "... and by at least `BYTES` over them"},
		&cli.BoolFlag{Name: "only-growing", Usage: "report only the growing groups", DisableDefaultText: true},
		&cli.StringFlag{Name: "baseline", Usage: "report only groups new or larger than in `FILE` (a recording or a JSON report)"},
	}
}

// historyFromFlags builds the session's History; closeRec closes the
// recording.
func historyFromFlags(c *cli.Context, symOpts symbolize.Options) (*history.History, func(), error) {
	h := &history.History{
		RecordSymbols: c.Bool("record-symbols"),
		OnlyGrowing:   c.Bool("only-growing"),
		Warn:          func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) },
	}
	growth, err := growthFromFlags(c)
	if err != nil {
		return nil, func() {}, err
	}
	h.Growth = growth
	if c.Bool("record-symbols") && c.String("record") == "" {
		return nil, func() {}, usageError{errors.New("--record-symbols needs --record FILE")}
	}
	if p := c.String("baseline"); p != "" {
		if h.Baseline, err = baseline.Load(p, symOpts); err != nil {
			return nil, func() {}, err
		}
	}
	if p := c.String("record"); p != "" {
		if h.Record, err = record.Create(p); err != nil {
			return nil, func() {}, err
		}
		return h, func() { h.Record.Close() }, nil
	}
	return h, func() {}, nil
}

func growthFromFlags(c *cli.Context) (timeline.Options, error) {
	k := c.Int("growth-window")
	if k < 1 {
		return timeline.Options{}, usageError{fmt.Errorf("--growth-window %d: want at least 1 check", k)}
	}
	min := c.Uint64("growth-min")
	if min < 1 {
		return timeline.Options{}, usageError{fmt.Errorf("--growth-min %d: want at least 1 byte", min)}
	}
	return timeline.Options{Window: k, MinBytes: min}, nil
}

// reportWriter is session.Writer with the file formats: html and pprof
// rewrite -o FILE after each check (a new file renamed over the old, so
// that a reader never sees half a page).
func reportWriter(c *cli.Context, out io.Writer) (func(*report.Report) error, error) {
	format := c.String("format")
	if format != "html" && format != "pprof" {
		return session.Writer(out, format)
	}
	path := c.String("output")
	if path == "" || path == "-" {
		return nil, fmt.Errorf("--format %s writes a file: give -o FILE", format)
	}
	latest := map[int]*report.Report{}
	return func(r *report.Report) error {
		if r.NoCheck {
			return nil
		}
		latest[r.PID] = r
		return replaceFile(path, func(w io.Writer) error { return writeFileFormat(w, format, sortedReports(latest)) })
	}, nil
}

func sortedReports(m map[int]*report.Report) []*report.Report {
	var out []*report.Report
	for _, r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

// writeFileFormat writes html (one page, a section per process) or pprof
// (the last report: a profile is one moment).
func writeFileFormat(w io.Writer, format string, rs []*report.Report) error {
	if format == "html" {
		return html.Write(w, rs)
	}
	if len(rs) == 0 {
		return errors.New("no check to write as a profile")
	}
	return pprof.Write(w, rs[len(rs)-1])
}

// replaceFile writes path through a temporary file renamed over it.
func replaceFile(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// reportCommand is `lsan report FILE`: a recording rendered offline.
func reportCommand() *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "render a recording (--record) offline: text, json, html or pprof",
		UsageText: "lsan report [flags] FILE",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "format", Value: "text", Usage: "report `FORMAT`: text, json, html or pprof"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the report to `FILE` instead of standard output"},
			&cli.StringFlag{Name: "from", Usage: "only snapshots at or after `TIME` (RFC 3339, or 2006-01-02 15:04:05 in local time)"},
			&cli.StringFlag{Name: "to", Usage: "only snapshots at or before `TIME`"},
			&cli.IntFlag{Name: "pid", Aliases: []string{"p"}, Usage: "only the snapshots of process `PID`"},
			&cli.BoolFlag{Name: "all", Usage: "text and json: every snapshot, as the live run printed them (default: the last one of each process, with its trends)", DisableDefaultText: true},
			&cli.IntFlag{Name: "top", Usage: "show the `N` largest groups (0: all)"},
			&cli.StringSliceFlag{Name: "suppressions", Aliases: []string{"s"}, Usage: "LSan-format suppression `FILE` (repeatable)"},
			&cli.BoolFlag{Name: "no-default-suppressions", Usage: "don't apply the built-in suppressions", DisableDefaultText: true},
			&cli.StringSliceFlag{Name: "debug-dir", Usage: "extra `DIR` searched for debug info by build-id (repeatable)"},
			&cli.BoolFlag{Name: "no-demangle", Usage: "print C++ and Rust names as they are in the binary", DisableDefaultText: true},
		}, growthFlags()...),
		Action: reportAction,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
	}
}

func reportAction(c *cli.Context) error {
	for _, a := range c.Args().Tail() {
		if strings.HasPrefix(a, "-") {
			return usageError{fmt.Errorf("%s after the recording: flags go first, lsan report [flags] FILE", a)}
		}
	}
	if c.NArg() != 1 {
		return usageError{errors.New("lsan report needs one recording: lsan report [flags] FILE")}
	}
	format := c.String("format")
	switch format {
	case "text", "json", "html", "pprof":
	default:
		return usageError{fmt.Errorf("--format %q: want text, json, html or pprof", format)}
	}
	if c.Int("top") < 0 {
		return usageError{fmt.Errorf("--top %d: want a count of groups, 0 for all", c.Int("top"))}
	}
	from, err := parseTimeFlag(c, "from")
	if err != nil {
		return err
	}
	to, err := parseTimeFlag(c, "to")
	if err != nil {
		return err
	}
	growth, err := growthFromFlags(c)
	if err != nil {
		return err
	}
	warnMissingDebugDirs(c)
	symOpts := symbolize.Options{DebugDirs: c.StringSlice("debug-dir"), NoDemangle: c.Bool("no-demangle")}
	opts, err := lsanOptions()
	if err != nil {
		return usageError{err}
	}
	sup, err := loadSuppressions(c, opts, "")
	if err != nil {
		return err
	}
	var base *baseline.Baseline
	if p := c.String("baseline"); p != "" {
		if base, err = baseline.Load(p, symOpts); err != nil {
			return err
		}
	}
	rec, err := record.ReadFile(c.Args().First())
	if err != nil {
		return err
	}
	if rec.Ignored > 0 {
		fmt.Fprintf(os.Stderr, "lsan: warning: %s: the last %d byte(s) are no complete snapshot (%s): left out\n", c.Args().First(), rec.Ignored, rec.Why)
	}
	o := offline{
		growth: growth, syms: symbolize.New(symOpts), sup: sup, base: base,
		onlyGrowing: c.Bool("only-growing"), top: c.Int("top"), pid: c.Int("pid"), from: from, to: to,
	}
	defer o.syms.Close()
	reports := o.render(rec)
	if len(reports) == 0 {
		return errors.New("no snapshot in the recording matches (--pid, --from, --to)")
	}
	return writeOffline(c, format, reports)
}

func parseTimeFlag(c *cli.Context, name string) (time.Time, error) {
	s := c.String(name)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02 15:04:05", s, time.Local); err == nil {
		return t, nil
	}
	return time.Time{}, usageError{fmt.Errorf("--%s %q: want a time such as 2026-12-03T10:00:00Z or \"2026-12-03 10:00:00\"", name, s)}
}

// writeOffline writes the rendered reports: text and json the last of
// each process (every one with --all), html one page, pprof the last.
func writeOffline(c *cli.Context, format string, reports []*report.Report) error {
	path := c.String("output")
	if format == "html" || format == "pprof" {
		last := lastPerProcess(reports)
		if path == "" || path == "-" {
			return writeFileFormat(os.Stdout, format, last)
		}
		return replaceFile(path, func(w io.Writer) error { return writeFileFormat(w, format, last) })
	}
	out, closeOut, err := openOutput(path)
	if err != nil {
		return err
	}
	defer closeOut()
	write, err := session.Writer(out, format)
	if err != nil {
		return usageError{err}
	}
	if !c.Bool("all") {
		reports = lastPerProcess(reports)
	}
	for _, r := range reports {
		if err := write(r); err != nil {
			return err
		}
	}
	return nil
}

func lastPerProcess(reports []*report.Report) []*report.Report {
	last := map[int]*report.Report{}
	for _, r := range reports {
		last[r.PID] = r
	}
	return sortedReports(last)
}

// offline turns snapshots into reports as the live session did: the same
// series (timeline.Add), suppressions, baseline and filters.
type offline struct {
	growth      timeline.Options
	syms        *symbolize.Symbolizer
	sup         *suppressions.Set
	base        *baseline.Baseline
	onlyGrowing bool
	top, pid    int
	from, to    time.Time
}

func (o *offline) render(rec *record.Recording) []*report.Report {
	series := timeline.New(o.growth)
	var out []*report.Report
	for _, s := range rec.Snapshots {
		r := s.Report
		if (o.pid != 0 && r.PID != o.pid) || (!o.from.IsZero() && r.Time.Before(o.from)) || (!o.to.IsZero() && r.Time.After(o.to)) {
			continue
		}
		r.Modules = s.Modules
		o.symbolize(r, s.Modules)
		o.suppress(r)
		series.Add(r)
		if o.base != nil {
			o.base.Apply(r)
		}
		if o.onlyGrowing {
			r.OnlyGrowing()
		}
		r.GrowingFirst()
		r.Top(o.top)
		out = append(out, r)
	}
	return out
}

// symbolize uses the frames stored at record time when there are any,
// else the debug info found here by build-id.
func (o *offline) symbolize(r *report.Report, mods []symbolize.Module) {
	p := o.syms.FromModules(r.PID, mods)
	for i := range r.Groups {
		g := &r.Groups[i]
		if g.Stack == nil {
			g.Stack = report.SymbolizeStack(g.PCs, g.Allocator, p.Symbolize)
		}
	}
}

// suppress hides the groups a rule matches. Unlike a live check it
// cannot turn what a suppressed block reaches into non-leaks: that needed
// the target's memory. Rules the recording applied live stay applied.
func (o *offline) suppress(r *report.Report) {
	if o.sup == nil || len(o.sup.Rules) == 0 {
		return
	}
	o.sup.ResetCounts()
	kept := r.Groups[:0]
	for _, g := range r.Groups {
		if rule := o.sup.Match(g.Stack); rule != nil {
			o.sup.Record(rule, g.Count, g.Bytes)
			continue
		}
		kept = append(kept, g)
	}
	r.Groups = kept
	for _, u := range o.sup.Used() {
		r.Suppressed = mergeRule(r.Suppressed, report.SuppressedRule{Pattern: u.String(), Count: u.Hits, Bytes: u.Bytes})
	}
}

func mergeRule(rules []report.SuppressedRule, add report.SuppressedRule) []report.SuppressedRule {
	for i := range rules {
		if rules[i].Pattern == add.Pattern {
			rules[i].Count += add.Count
			rules[i].Bytes += add.Bytes
			return rules
		}
	}
	return append(rules, add)
}

// runIntervalFlag gives lsan run checks of the live command, for its
// timeline; without it lsan run checks once, at exit, as LSan does.
func runIntervalFlag() cli.Flag {
	return &cli.DurationFlag{Name: "interval", Aliases: []string{"i"}, Usage: "also check the running command every `DURATION` (for --record and trends; default: at exit only)"}
}
