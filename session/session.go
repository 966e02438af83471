// Package session runs lsan against one target process: it attaches the
// tracer, runs a check every interval (and a final one on a signal or when
// the target exits), and hands each report to the writer. It is the wiring
// between bpf, scanner, symbolize, suppressions and report.
package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/lsan-project/lsan/bpf"
	"github.com/lsan-project/lsan/history"
	"github.com/lsan-project/lsan/inproc"
	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/scanner"
	"github.com/lsan-project/lsan/suppressions"
	"github.com/lsan-project/lsan/symbolize"
	"golang.org/x/sys/unix"
)

// Config is everything a session needs.
type Config struct {
	PID      int
	Mode     report.Mode
	Interval time.Duration
	// Count stops after that many checks (0: until cancelled).
	Count int
	// Top keeps the N largest groups of a report (0: all).
	Top int
	// MinAge hides blocks younger than this (outstanding mode).
	MinAge time.Duration
	// ReportObjects lists every block's address in reports.
	ReportObjects bool
	Tracer        bpf.Options
	Symbolize     symbolize.Options
	Suppressions  *suppressions.Set
	// SuggestSuppressions adds a ready-to-paste rule to every group.
	SuggestSuppressions bool
	// HideSuppressionsUsed leaves out the "Suppressions used" table
	// (LSAN_OPTIONS=print_suppressions=0).
	HideSuppressionsUsed bool
	// ReturnProbes chooses how allocator calls are seen to end.
	ReturnProbes ReturnProbes
	// InProc records lsan run's allocations inside the command (package
	// inproc) where it can be loaded, instead of with uprobes.
	InProc bool
	// Snapshot chooses how a check freezes the target (--snapshot).
	Snapshot SnapshotMode
	// Abort, once closed, aborts the check in progress (a second Ctrl-C).
	Abort <-chan struct{}
	// NoFinalCheck skips the check at the command's exit (lsan run) or on
	// SIGINT/SIGTERM (lsan -p): LSAN_OPTIONS leak_check_at_exit=0.
	NoFinalCheck bool
	// Scan holds the scan's root options (LSAN_OPTIONS use_stacks=0 and
	// the like, ScanUnaligned); the session sets the allocator, the
	// bounds and the root set itself.
	Scan scanner.Options
	// History keeps the series across checks, records them, filters
	// (session/record.go); nil: each check stands alone.
	History *history.History
	// Write receives every report.
	Write func(*report.Report) error
	// Log receives progress lines for stderr.
	Log func(format string, args ...any)
}

// ReturnProbes says how allocator calls are seen to end (--return-probes).
type ReturnProbes int

const (
	// ReturnAuto: exit probes for lsan run, whose one check at exit must
	// match LSan's; uretprobes for lsan -p, attached to live services,
	// where they cost a third and a copy they leave only delays a report.
	ReturnAuto ReturnProbes = iota
	ReturnExit
	ReturnUretprobe
)

// SnapshotMode is how a check freezes the target (--snapshot).
type SnapshotMode int

const (
	// SnapshotStop: the target is stopped for the whole scan.
	SnapshotStop SnapshotMode = iota
	// SnapshotFork: the target forks a copy-on-write copy, which is
	// scanned while the target runs on (lsan -p; scanner.Options.Fork).
	SnapshotFork
)

// allocations is where a session reads the blocks and their stacks: the
// BPF tracer's maps, or lsan run's in-process recorder (package inproc).
type allocations interface {
	Blocks(pid int) ([]bpf.Block, error)
	Freed(pid int) ([]bpf.FreedRange, error)
	Stack(b bpf.Block) []uint64
	FuncAddr(b bpf.Block) uint64
}

// taker is allocations that hold processes' live sets in lsan's own
// memory (the in-process recorder) and can hand one over, forgetting it,
// to the check at the process's exit.
type taker interface {
	Take(pid int) *inproc.Taken
}

// lender is allocations that can also lend a process's live set to a
// check before its exit, which hands it back (inproc.Lent).
type lender interface {
	Lend(pid int) *inproc.Lent
}

// tracer is what a session asks of whatever follows its processes: the
// BPF tracer, or, when lsan run's in-process recorder follows the command
// alone, recorderTracer (inproc.go), which loads no BPF program.
type tracer interface {
	allocations
	Allocator() *bpf.Allocator
	Probes() []bpf.Probe
	Funcs() []bpf.AllocatorFunc
	FuncName(fn uint16) string
	Counters() (bpf.Counters, error)
	UnwindStats() bpf.UnwindStats
	MaxBlocks() uint32
	PruneLive() (int, error)
	PruneStacks() (int, error)
	Events() <-chan bpf.Event
	AddProcess(pid int) error
	RemoveProcess(pid int)
	Track(pid int) error
	SharesProbes(pid int) bool
	Close() error
}

// Session is an attached lsan.
type Session struct {
	cfg    Config
	tracer tracer
	// allocs is the tracer, or rec when the in-process recorder records.
	allocs allocations
	rec    *inproc.Recorder
	// releaseLibrary removes the recorder's library where this run wrote
	// it for itself alone (inproc.Library).
	releaseLibrary func()
	// rows computes unwind rows for rec when no BPF tracer does.
	rows *bpf.RowsLoader
	syms *symbolize.Symbolizer
	// proc is the target's last mapping snapshot: reports made after the
	// target exited are symbolized with it.
	proc     *symbolize.Process
	exited   <-chan struct{}
	lastLeak bool
	// lastLost: the last check ran on data that lacked something that can
	// change its verdict (see report.Dropped.Lost).
	lastLost bool
	// runMode: every block is tracked from the start (lsan run), so the
	// scan uses LSan's roots.
	runMode bool
	// losses reports lost events on stderr as they happen.
	losses *lossWatcher
	// checked: a check of this process ran (lsan run: at its exit).
	checked bool
	// exitChecked: lsan run checked it at its exit, which it is past:
	// no periodic check may follow (its memory is being torn down).
	exitChecked bool
	// kinds: the allocator of each allocator function's blocks, where it
	// differs from malloc's (allocatorKinds).
	kinds []scanner.Allocator
	// forkFallback is the last reason given for not forking.
	forkFallback string
	// leakedBefore: the blocks the previous check found leaked, which
	// confirm those a fork snapshot finds (confirmLeaks).
	leakedBefore *leakedSet
	// firstCopy is set while the last check scans its second copy.
	firstCopy *firstCopy
}

// firstCopy is what the last check's first copy left its second: what it
// cost, counted in the second's report; the builder of its tracked set,
// which the second brings up to date (refreshTracked); and which of that
// set's blocks it found leaked.
type firstCopy struct {
	start  time.Time
	paused time.Duration
	tb     *trackedBuilder
	leaked bitset
}

// ErrTargetExited reports that the target exited before a check.
var ErrTargetExited = errors.New("target exited")

// ErrNoCheck reports that the target exited before the first leak check
// could run: the run found nothing because it looked at nothing.
var ErrNoCheck = errors.New("no check ran")

// Attach puts every probe in place on cfg.PID.
func Attach(cfg Config) (*Session, error) {
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	cfg.Tracer.PID = cfg.PID
	// Blocks allocated before the attach live in heap memory lsan does
	// not track, so heap memory stays a root; what the target frees from
	// now on is remembered, to be left out.
	cfg.Tracer.TrackFreed = true
	cfg.Tracer.ExitProbes = cfg.ReturnProbes == ReturnExit
	exited, err := exitNotifier(cfg.PID)
	if err != nil {
		return nil, err
	}
	s := &Session{cfg: cfg, syms: symbolize.New(cfg.Symbolize), exited: exited}
	s.sizeBlockMap()
	t, err := bpf.Attach(s.cfg.Tracer)
	if err != nil {
		return nil, err
	}
	s.tracer, s.allocs = t, t
	s.logProbes()
	s.watchLosses()
	s.refreshMappings()
	return s, nil
}

func (s *Session) logProbes() {
	alloc := s.tracer.Allocator()
	primary := alloc.Primary()
	cxx := ""
	if b, ok := alloc.Bindings["_Znwm"]; ok {
		cxx = fmt.Sprintf(", operator new in %s", b.Object.Path)
	}
	if s.rec != nil {
		s.cfg.Log("lsan: recording in process: malloc of %s%s, through lsan's preloaded library", primary.Path, cxx)
		s.cfg.Log("lsan: attached to pid %d", s.cfg.PID)
		return
	}
	s.cfg.Log("lsan: probing malloc in %s%s (%d probes)", primary.Path, cxx, len(s.tracer.Probes()))
	var kept []string
	for _, p := range s.tracer.Probes() {
		if p.Returns && p.ReturnProbeWhy != "" && s.cfg.Tracer.ExitProbes {
			kept = append(kept, fmt.Sprintf("%s (%s)", p.Func, p.ReturnProbeWhy))
		}
	}
	if len(kept) > 0 {
		// Their returns go through the kernel's trampoline, which leaves a
		// copy of the result below the stack pointer (bpf/exits.go).
		s.cfg.Log("lsan: return probes kept on %s: a copy of their results may hide a leak", strings.Join(kept, ", "))
	}
	if !s.cfg.Tracer.ExitProbes && runtime.GOARCH == "amd64" {
		s.cfg.Log("lsan: allocator returns seen by uretprobes (fast): a copy of a returned pointer they leave on the stack can hide a leak until it is overwritten; --return-probes exit rules that out, at about 3x the cost per call")
	}
	s.cfg.Log("lsan: attached to pid %d", s.cfg.PID)
}

// exitNotifier returns a channel closed when pid exits: a pidfd becomes
// readable then. Nothing is waited for, so no wait status is consumed.
func exitNotifier(pid int) (<-chan struct{}, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, fmt.Errorf("no process with pid %d", pid)
		}
		return nil, fmt.Errorf("watch pid %d: %w", pid, err)
	}
	ch := make(chan struct{})
	go func() {
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); !errors.Is(err, unix.EINTR) {
				break
			}
		}
		close(ch)
	}()
	return ch, nil
}

func (s *Session) targetExited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// Close detaches every probe and releases the symbolizer's files.
func (s *Session) Close() error {
	if s.syms != nil {
		s.syms.Close()
		s.syms = nil
	}
	if s.releaseLibrary != nil {
		s.releaseLibrary()
		s.releaseLibrary = nil
	}
	if s.tracer == nil {
		return nil
	}
	if s.losses != nil {
		s.losses.close()
		s.losses = nil
	}
	err := s.tracer.Close()
	s.tracer = nil
	if s.rec != nil {
		s.rec.Close()
		s.rec = nil
	}
	return err
}

// Run checks every interval until Count checks are done, ctx is cancelled
// (SIGINT/SIGTERM: then a final check runs) or the target exits (a final
// report from what the tracer holds). It returns whether the last check
// found unsuppressed leaks.
func (s *Session) Run(ctx context.Context) (bool, error) {
	ticker := time.NewTicker(s.cfg.Interval)
	defer ticker.Stop()
	prune := time.NewTicker(stackPruneInterval)
	defer prune.Stop()
	for done := 0; s.cfg.Count == 0 || done < s.cfg.Count; done++ {
		select {
		case <-prune.C:
			s.pruneLive()
			done-- // not a check
		case <-ticker.C:
			if err := s.check(done+1 == s.cfg.Count); err != nil {
				if errors.Is(err, ErrTargetExited) {
					return s.lastLeak, s.finalAfterExit()
				}
				return s.lastLeak, err
			}
		case <-ctx.Done():
			if s.cfg.NoFinalCheck {
				s.cfg.Log("lsan: interrupted; no final check (leak_check_at_exit=0)")
				return s.lastLeak, nil
			}
			s.cfg.Log("lsan: interrupted, final check")
			err := s.check(true)
			if errors.Is(err, ErrTargetExited) {
				return s.lastLeak, s.finalAfterExit()
			}
			return s.lastLeak, err
		case <-s.exited:
			return s.lastLeak, s.finalAfterExit()
		}
	}
	return s.lastLeak, nil
}

// finalAfterExit reports what can still be said once the target is gone:
// its outstanding blocks (the maps outlive it); a reachability check needs
// the target's memory, so leaks mode says so instead.
func (s *Session) finalAfterExit() error {
	s.cfg.Log("lsan: pid %d exited", s.cfg.PID)
	if s.cfg.Mode != report.ModeOutstanding {
		if !s.checked {
			return s.reportNoCheck()
		}
		s.cfg.Log("lsan: no leak check possible after the target exited; last check stands")
		return nil
	}
	return s.checkOutstanding(true)
}

func (s *Session) check(final bool) error {
	if s.targetExited() {
		return ErrTargetExited
	}
	s.refreshMappings()
	if s.cfg.Mode == report.ModeOutstanding {
		return s.checkOutstanding(final)
	}
	err := s.checkLeaks(final)
	if err == nil {
		s.checked = true
	}
	return err
}

// reportNoCheck writes the record of a run in which no check ran.
func (s *Session) reportNoCheck() error {
	r := s.newReport(true)
	r.NoCheck = true
	if s.cfg.Write != nil {
		if err := s.cfg.Write(r); err != nil {
			return err
		}
	}
	return fmt.Errorf("%w: pid %d exited before the first leak check", ErrNoCheck, s.cfg.PID)
}

// refreshMappings snapshots the target's mappings for symbolization; a
// failure keeps the previous snapshot (the target may just have exited).
func (s *Session) refreshMappings() {
	if p, err := s.syms.Snapshot(s.cfg.PID); err == nil {
		s.proc = p
	}
}

func (s *Session) newReport(final bool) *report.Report {
	r := &report.Report{
		PID:        s.cfg.PID,
		Time:       time.Now(),
		Mode:       s.cfg.Mode,
		SampleRate: s.cfg.Tracer.SampleRate,
		MinAge:     s.cfg.MinAge,
		Final:      final,
	}
	s.fillCounters(r)
	return r
}

// fillCounters copies the tracer's event counts into a report.
func (s *Session) fillCounters(r *report.Report) {
	c, err := s.counters()
	if err != nil {
		return
	}
	unreadable := r.Dropped.UnreadableBytes
	r.Dropped = droppedOf(c)
	r.Dropped.UnreadableBytes = unreadable
	r.Dropped.Unrecorded = s.unrecorded()
	r.Stats.Allocs, r.Stats.Frees = c.Allocs, c.Frees
	u := s.tracer.UnwindStats()
	r.Stats.StacksCut, r.Stats.UnwindTableBytes = u.Cut(), u.TableBytes
	r.Stats.StacksLate = u.LateWalked
}

// counters are the tracer's counts, with the in-process recorder's
// standing in for the allocation events when it records.
func (s *Session) counters() (bpf.Counters, error) {
	c, err := s.tracer.Counters()
	if err != nil || s.rec == nil {
		return c, err
	}
	rc := s.rec.Counters()
	c.Allocs, c.Frees = rc.Allocs, rc.Frees
	c.StacksDropped = rc.StacksDropped
	return c, nil
}

// unrecorded counts what the in-process recorder missed for this
// process: records it could not write, and its program image when the
// recorder is not loaded in it (report.Dropped.Unrecorded).
func (s *Session) unrecorded() uint64 {
	if s.rec == nil {
		return 0
	}
	rc := s.rec.Counters()
	n := rc.Lost
	if rc.Disabled && n == 0 {
		n = 1
	}
	if !s.rec.Loaded(s.cfg.PID) && !s.targetExited() {
		n++
	}
	return n
}

func droppedOf(c bpf.Counters) report.Dropped {
	return report.Dropped{
		Allocs: c.AllocsDropped,
		Stacks: c.StacksDropped,
		Frees:  c.FreesMissed,
		Calls:  c.InflightDropped,
		Events: c.EventsDropped,
	}
}

// Incomplete says whether the last check's verdict rests on incomplete
// data (exit status 3 when it found no leaks).
func (s *Session) Incomplete() bool { return s.lastLost }

// lookupPCs turns a tracer stack into the addresses to symbolize: the
// allocator function as is, each caller's return address minus one so that
// the line shown is the line of the call.
func lookupPCs(stack []uint64, startsWithFunc bool) []uint64 {
	out := make([]uint64, len(stack))
	for i, pc := range stack {
		if i == 0 && startsWithFunc {
			out[i] = pc
		} else {
			out[i] = pc - 1
		}
	}
	return out
}

// stackKey identifies a block's allocation stack, allocator frame included.
func stackKey(b bpf.Block) uint64 {
	return b.StackID*31 + uint64(b.Fn) + 1
}

func (s *Session) blockPCs(b bpf.Block) []uint64 {
	return lookupPCs(s.allocs.Stack(b), s.allocs.FuncAddr(b) != 0)
}

func (s *Session) symbolizeAndWrite(r *report.Report) error {
	s.observe(r)
	r.Top(s.cfg.Top)
	r.Symbolize(s.symbolizePC)
	if s.cfg.HideSuppressionsUsed {
		r.Suppressed = nil
	}
	if s.cfg.SuggestSuppressions {
		for i := range r.Groups {
			r.Groups[i].Suggestion = suppressions.Suggest(r.Groups[i].Stack)
		}
	}
	return s.cfg.Write(r)
}

// stackPruneInterval is how often the stacks of freed blocks are released
// between checks, so that a long run cannot fill the stack map with them.
const stackPruneInterval = 2 * time.Second

// pruneLive releases the stacks of freed blocks while the target runs.
func (s *Session) pruneLive() {
	if _, err := s.tracer.PruneLive(); err != nil {
		s.cfg.Log("lsan: warning: %v", err)
	}
}

// pruneStacks frees the stack map of stacks no live block uses any more.
func (s *Session) pruneStacks() {
	if _, err := s.tracer.PruneStacks(); err != nil {
		s.cfg.Log("lsan: warning: %v", err)
	}
}

// monotonicNow is CLOCK_MONOTONIC, the clock of block timestamps.
func monotonicNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// Writer returns a Config.Write that writes reports to w in format
// ("text" or "json").
func Writer(w io.Writer, format string) (func(*report.Report) error, error) {
	switch format {
	case "text":
		return func(r *report.Report) error { return report.WriteText(w, r) }, nil
	case "json":
		return func(r *report.Report) error { return report.WriteJSON(w, r) }, nil
	}
	return nil, fmt.Errorf("unknown format %q (want text or json)", format)
}
