package session

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/lsan-project/lsan/bpf"
	"github.com/lsan-project/lsan/inproc"
	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/scanner"
	"github.com/lsan-project/lsan/suppressions"
	"github.com/lsan-project/lsan/symbolize"
)

// maxSuppressionPasses bounds the reclassification after suppressions, as
// LSan gives up after a few reruns.
const maxSuppressionPasses = 9

// checkLeaks stops the target, scans it, classifies the tracked blocks and
// reports the unsuppressed direct and indirect leaks.
func (s *Session) checkLeaks(final bool) error {
	return s.scanAndReport(final, nil)
}

// checkLeaksStopped is checkLeaks for a process that is already stopped
// (at _exit): its blocks can be read before the freeze, and when it has
// none, there is nothing to scan for (short-lived children often have
// none).
func (s *Session) checkLeaksStopped() error {
	t, err := s.exitBlocks()
	if err != nil {
		return fmt.Errorf("leak check: %w", err)
	}
	defer t.release()
	if len(t.blocks) > 0 {
		return s.scanAndReport(true, t)
	}
	s.lastLeak = false
	r := s.newReport(true)
	s.lastLost = r.Dropped.Lost()
	return s.symbolizeAndWrite(r)
}

// exitBlocks reads the blocks of a process at its exit, once. The
// in-process recorder hands its live set over (Take), returning the
// memory as it is read; the BPF tracer's are streamed from its map
// (readTracked). The set must be released.
func (s *Session) exitBlocks() (*trackedSet, error) {
	if r, ok := s.allocs.(taker); ok {
		live := r.Take(s.cfg.PID)
		return s.setOf(live.Len(), live.Each).done(), nil
	}
	tb, _, err := s.readTracked(0)
	if err != nil {
		return nil, err
	}
	return tb.done(), nil
}

// blockStream is allocations that hand out a process's blocks one at a
// time (the BPF tracer, from its map batch by batch).
type blockStream interface {
	EachBlock(pid int, fn func(bpf.Block)) error
	ExpectedBlocks() int
}

// eachBlock calls fn with each of the target's blocks the tracer holds,
// streamed where the tracer can.
func (s *Session) eachBlock(fn func(bpf.Block)) error {
	if st, ok := s.allocs.(blockStream); ok {
		return st.EachBlock(s.cfg.PID, fn)
	}
	bs, err := s.allocs.Blocks(s.cfg.PID)
	for _, b := range bs {
		fn(b)
	}
	return err
}

// readTracked reads the tracer's blocks into a trackedSet of those
// allocated by forkedAt (see bornBy), made by the builder returned, and
// returns the memory of those allocated after it (the copy holds it as
// something else). The set must be released. A tracer that streams its
// blocks is read without a slice of them all (a million 48-byte blocks
// beside their 24-byte records were lsan -p's peak), into a large set's
// mapping of its own (newMappedBuilder): returned when the check ends,
// where the Go heap would keep it as garbage until a later collection
// and hand it back to the kernel later still.
func (s *Session) readTracked(forkedAt uint64) (*trackedBuilder, []scanner.Range, error) {
	var (
		tb     *trackedBuilder
		reused []scanner.Range
	)
	add := func(b bpf.Block) {
		if bornBy(b, forkedAt) {
			tb.add(b)
		} else {
			reused = append(reused, blockRange(b))
		}
	}
	readAt := forkedAt
	if readAt == 0 { // the target is stopped: every block was born by now
		readAt = monotonicNow()
	}
	n := 0 // a tracer that does not stream (tests' fakes) grows the set
	if st, ok := s.allocs.(blockStream); ok {
		n = st.ExpectedBlocks()
	}
	tb = s.newMappedBuilder(n)
	tb.set.readAt = readAt
	if err := s.eachBlock(add); err != nil {
		tb.set.release()
		return nil, nil, err
	}
	return tb, reused, nil
}

// scanAndReport runs the scan; known holds the blocks already read from
// the tracer (nil: read them while the target is frozen).
func (s *Session) scanAndReport(final bool, known *trackedSet) error {
	start := time.Now()
	var (
		tracked *trackedSet
		tb      *trackedBuilder // what made tracked, unless known
		read    *trackedBuilder // tb, where this call read it: released at its end
		lent    *inproc.Lent    // where read borrowed the recorder's live set
	)
	large := false // tracked holds enough blocks to leave much garbage
	// dropRead lets go of the set this call read: handed back where it
	// was borrowed, released otherwise.
	dropRead := func() {
		switch {
		case lent != nil:
			if large {
				// The check's garbage (its edges and classes) goes
				// first: the live set's table comes back whole as the
				// set goes.
				debug.FreeOSMemory()
			}
			restoreLent(lent, &read.set)
		case read != nil:
			read.set.release()
		}
		lent, read = nil, nil
	}
	defer func() {
		dropRead()
		if large && s.firstCopy == nil {
			// A large check leaves tens of MiB of garbage (the report's
			// grouping, the classes, the edges, the blocks' births, the
			// last confirmations), which the Go heap would keep
			// resident into the next check, adding to its peak:
			// collected and given back now (a few ms, the heap holding
			// few pointers). The last check's second copy leaves that
			// to its first, which ends after it.
			debug.FreeOSMemory()
		}
	}()
	snapshot := func(forkedAt uint64) (scanner.Snapshot, error) {
		var reused []scanner.Range
		var err error
		switch {
		case known != nil:
			tracked = known
		case s.firstCopy != nil:
			tb = s.firstCopy.tb
			reused, err = s.refreshTracked(s.firstCopy, forkedAt)
		default:
			dropRead() // an earlier attempt's (the copy grew: the check stops the target instead)
			var ok bool
			if forkedAt == 0 { // stopped: the live set is what it was at the stop
				tb, lent, ok = s.lendTracked()
			}
			if !ok {
				tb, reused, err = s.readTracked(forkedAt)
			}
			read = tb
		}
		if err != nil {
			return scanner.Snapshot{}, err
		}
		if tb != nil {
			tracked = tb.done()
		}
		large = len(tracked.blocks) >= mapBlocksMin
		freed, err := s.allocs.Freed(s.cfg.PID)
		if err != nil {
			return scanner.Snapshot{}, err
		}
		reused = append(reused, reusedSince(freed, forkedAt)...)
		return scanner.Snapshot{Blocks: tracked.blocks, Freed: toRanges(freed, forkedAt), Reused: reused}, nil
	}
	res, err := scanner.CheckSnapshot(s.cfg.PID, snapshot, s.scanOptions())
	if err != nil {
		if errors.Is(err, scanner.ErrTargetExited) {
			return ErrTargetExited
		}
		if errors.Is(err, scanner.ErrCanceled) {
			return fmt.Errorf("interrupted again: leak check of pid %d aborted; the process was resumed", s.cfg.PID)
		}
		return fmt.Errorf("leak check: %w", err)
	}
	s.refreshMappings()
	r := s.newReport(final)
	classes, used := s.applySuppressions(res, tracked)
	unconfirmed, leaked := s.confirmLeaks(tracked, classes, res.Stats.Forked, final)
	if final && unconfirmed > 0 && s.firstCopy == nil && tb != nil {
		// No later check will confirm what this copy found: a second
		// copy, taken now, does. It scans this copy's set, brought up to
		// date (refreshTracked). The report is the second's, its pause
		// and time the two checks'.
		s.firstCopy = &firstCopy{start: start, paused: res.Stats.Paused, tb: tb, leaked: leaked}
		defer func() { s.firstCopy = nil }()
		// What the first copy's scan made (its edges and classes) is
		// garbage now: collected and given back to the kernel (~5 ms,
		// the heap holding few pointers) before the second scan makes
		// its own.
		debug.FreeOSMemory()
		return s.scanAndReport(final, nil)
	}
	paused, snapshots := res.Stats.Paused, 1
	if s.firstCopy != nil {
		start, paused, snapshots = s.firstCopy.start, paused+s.firstCopy.paused, 2
	}
	r.Suppressed = used
	r.Groups = s.leakGroups(tracked, classes)
	s.attachPCs(r, tracked.stacks)
	r.Stats = report.Stats{
		Blocks:       len(tracked.blocks),
		ScannedBytes: res.Stats.ScannedBytes,
		PausedMS:     ms(paused),
		CheckMS:      ms(time.Since(start)),
		Snapshots:    snapshots,
		Threads:      res.Stats.Threads,
		ExitedStacks: res.Stats.ExitedStacks,
		FreedBytes:   res.Stats.FreedBytes,
		Snapshot:     map[bool]string{true: "fork", false: "stop"}[res.Stats.Forked],
		Unconfirmed:  unconfirmed,
	}
	s.noteForkFallback(res.Stats.ForkFallback)
	r.Dropped.UnreadableBytes = res.Stats.UnreadableBytes
	s.fillCounters(r)
	s.lastLeak = len(r.Groups) > 0
	s.lastLost = r.Dropped.Lost()
	// The blocks are done with: a lent live set goes back, and a read one
	// is released, before the report is symbolized (which loads debug
	// information), not after.
	dropRead()
	err = s.symbolizeAndWrite(r)
	s.pruneStacks()
	return err
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// lsanSize is a block's size as LSan records it (lsan_allocator.cpp), so
// that reports count the same bytes: a zero-size request allocates one
// byte, except through realloc(NULL, 0); pvalloc rounds up to whole pages.
func (s *Session) lsanSize(b bpf.Block) uint64 {
	switch fn := s.tracer.FuncName(b.Fn); {
	case fn == "pvalloc":
		return max((b.Size+pageSize-1)/pageSize*pageSize, pageSize)
	case fn == "realloc" || fn == "reallocarray":
		return b.Size
	}
	return max(b.Size, 1)
}

const pageSize = 4096

// scanOptions are the scan's options for this session. Pointers count
// into the requested size, as in LSan (a pointer one past the end keeps
// nothing alive); blocks are still scanned over their usable size.
func (s *Session) scanOptions() scanner.Options {
	opts := s.cfg.Scan
	opts.Allocator = s.allocatorKind()
	opts.ExactBounds = true
	opts.Cancel = s.cfg.Abort
	opts.Roots = scanner.RootsAttach
	if s.runMode {
		opts.Roots = scanner.RootsLSan
	}
	// A fork snapshot only where freed memory is a root: with LSan's
	// roots, a block freed after the fork, untracked in the copy, would
	// let the blocks only it points to look leaked. lsan run checks once,
	// at the exit, where a pause costs nothing.
	opts.Fork = s.cfg.Snapshot == SnapshotFork && !s.runMode
	return opts
}

// confirmLeaks holds back, in a check of a fork snapshot, the leaked
// blocks that the previous check did not find leaked too (their classes
// become Reachable), and returns how many it held back. A copy is taken
// while allocator calls may be half done, and its blocks and freed ranges
// are read from the tracer after the target ran on: a block can look
// unreferenced in one copy for reasons that are gone in the next. A real
// leak stays unreferenced, so it is reported one check later (the last
// check takes its second copy at once: scanAndReport). A check of the
// stopped target (a fallback) is exact and reports everything it finds.
//
// What this check finds leaked is kept for the one that confirms it: a
// later check's (leakedBefore, about 1.3 bytes a block), or the last check's
// second copy's (the bits returned, over tracked's blocks); nothing after
// that second copy.
func (s *Session) confirmLeaks(tracked *trackedSet, classes []scanner.Class, forked, final bool) (int, bitset) {
	wasLeaked := func(i int) bool { return s.leakedBefore.has(tracked.blocks[i].Addr, tracked.bornOf(i)) }
	if fc := s.firstCopy; fc != nil {
		wasLeaked = fc.leaked.has
	}
	var (
		leaked []uint64 // addresses
		bits   bitset
	)
	switch {
	case !s.scanOptions().Fork || final && s.firstCopy != nil:
	case final:
		bits = newBitset(len(tracked.blocks))
	default:
		// Sized by counting first: grown by append, it would leave as
		// much again behind.
		leaked = make([]uint64, 0, countLeaks(classes))
	}
	held := 0
	for i := range tracked.blocks {
		if !isLeak(classes[i]) {
			continue
		}
		if leaked != nil {
			leaked = append(leaked, tracked.blocks[i].Addr)
		}
		if bits != nil {
			bits.set(i)
		}
		if forked && !wasLeaked(i) {
			classes[i] = scanner.Reachable
			held++
		}
	}
	s.leakedBefore = nil
	if leaked != nil {
		s.leakedBefore = &leakedSet{readAt: tracked.readAt, addrs: packAddrs(leaked)}
	}
	return held, bits
}

func isLeak(c scanner.Class) bool { return c == scanner.Direct || c == scanner.Indirect }

func countLeaks(classes []scanner.Class) int {
	n := 0
	for _, c := range classes {
		if isLeak(c) {
			n++
		}
	}
	return n
}

// noteForkFallback says once, on stderr, why checks stop the target
// instead of forking it.
func (s *Session) noteForkFallback(why string) {
	if why == "" || why == s.forkFallback {
		return
	}
	s.forkFallback = why
	s.cfg.Log("lsan: checks stop pid %d for the whole scan instead of scanning a copy: %s", s.cfg.PID, why)
}

// allocatorKinds says, per allocator function (Block.Fn), which allocator
// its blocks come from, where it is not the one malloc binds to: a
// je_-prefixed jemalloc linked into the program (redis's own) beside
// glibc, or a pool the user named.
func (s *Session) allocatorKinds() []scanner.Allocator {
	if s.kinds != nil {
		return s.kinds
	}
	funcs := s.tracer.Funcs()
	s.kinds = make([]scanner.Allocator, len(funcs))
	for i, f := range funcs {
		switch {
		case f.Family == "user":
			s.kinds[i] = scanner.Unknown
		case f.Family == "jemalloc" && strings.HasPrefix(f.Name, "je_"):
			s.kinds[i] = scanner.Jemalloc
		}
	}
	return s.kinds
}

// linkerAllocated tells whether the dynamic linker allocated b (its
// caller is in ld.so): DTVs and dynamic TLS blocks, referenced from
// thread descriptors and linker memory that is no root. LSan treats
// these as reachable (use_ld_allocations); so does lsan. It is asked
// once per stack (trackedBuilder).
func (s *Session) linkerAllocated(b bpf.Block) bool {
	if b.StackID == 0 || s.proc == nil {
		return false
	}
	pcs := s.allocs.Stack(b)
	if len(pcs) == 0 {
		return false
	}
	caller := pcs[0]
	if s.allocs.FuncAddr(b) != 0 && len(pcs) > 1 {
		caller = pcs[1]
	}
	m, ok := s.proc.Module(caller - 1)
	return ok && isDynamicLinker(m.Path)
}

// isDynamicLinker tells the dynamic linker by its file name: glibc's
// ld-linux-x86-64.so.2 and the like, musl's ld-musl-*.so.1.
func isDynamicLinker(path string) bool {
	base := filepath.Base(path)
	return strings.HasPrefix(base, "ld-linux") || strings.HasPrefix(base, "ld-musl") ||
		strings.HasPrefix(base, "ld64.so") || strings.HasPrefix(base, "ld.so")
}

// toRanges turns freed ranges into the scanner's. With a fork snapshot
// (forkedAt, CLOCK_MONOTONIC) a range freed after the fork is still a
// live block in the copy, which may hold the only pointer to another:
// left out of the roots, it would make that one look leaked.
func toRanges(fs []bpf.FreedRange, forkedAt uint64) []scanner.Range {
	out := make([]scanner.Range, 0, len(fs))
	for _, f := range fs {
		if forkedAt == 0 || f.TimeNS <= forkedAt {
			out = append(out, scanner.Range{Addr: f.Addr, Size: f.Size})
		}
	}
	return out
}

// blockRange is the memory of b, one byte for malloc(0).
func blockRange(b bpf.Block) scanner.Range {
	return scanner.Range{Addr: b.Addr, Size: max(b.Size, 1)}
}

// reusedSince is the memory freed after a fork snapshot (forkedAt; nil
// without one), which was allocated when the copy was made (blocks
// allocated since are readTracked's). Memory freed before the fork may
// have been handed out again at other bounds (a slab carved into another
// size class) to a block that was live at the fork and is gone now:
// untracked, its memory in the copy is a root, which the earlier free
// must not erase — that block may hold the only pointer to another.
func reusedSince(freed []bpf.FreedRange, forkedAt uint64) []scanner.Range {
	if forkedAt == 0 {
		return nil
	}
	var out []scanner.Range
	for _, f := range freed {
		if f.TimeNS > forkedAt {
			out = append(out, scanner.Range{Addr: f.Addr, Size: f.Size})
		}
	}
	return out
}

// bornBy tells whether b was allocated by forkedAt (always when 0): a
// block allocated after a fork snapshot is not in the copy. A block freed
// after it is not in the tracer's blocks either; its memory is untracked
// in the copy, hence a root: conservative, never a false leak.
func bornBy(b bpf.Block, forkedAt uint64) bool {
	return forkedAt == 0 || b.TimestampNS <= forkedAt
}

// leakGroups groups the leaked blocks by kind and stack.
func (s *Session) leakGroups(tracked *trackedSet, classes []scanner.Class) []report.Group {
	g := report.NewGrouper(s.cfg.ReportObjects)
	for i, b := range tracked.blocks {
		var kind report.Kind
		switch classes[i] {
		case scanner.Direct:
			kind = report.Direct
		case scanner.Indirect:
			kind = report.Indirect
		default:
			continue
		}
		g.Add(report.Entry{Kind: kind, Key: stackKey(tracked.stacks[b.Tag]), Addr: b.Addr, Size: b.Size})
	}
	return g.Groups()
}

// applySuppressions hides the leaks whose stack matches a rule. As in
// LSan, a suppressed block then counts as a root, so what only it reaches
// is no leak either; that can expose new direct leaks, so it repeats.
func (s *Session) applySuppressions(res *scanner.Result, tracked *trackedSet) ([]scanner.Class, []report.SuppressedRule) {
	classes := res.Classes
	if s.cfg.Suppressions == nil || len(s.cfg.Suppressions.Rules) == 0 {
		return classes, nil
	}
	s.cfg.Suppressions.ResetCounts()
	ignored := make([]bool, len(tracked.blocks))
	rules := s.stackRules(tracked)
	for pass := 0; pass < maxSuppressionPasses; pass++ {
		changed := false
		for i, b := range tracked.blocks {
			if ignored[i] || (classes[i] != scanner.Direct && classes[i] != scanner.Indirect) {
				continue
			}
			rule := rules.of(b.Tag)
			if rule == nil {
				continue
			}
			ignored[i] = true
			changed = true
			s.cfg.Suppressions.Record(rule, 1, b.Size)
		}
		if !changed {
			break
		}
		classes = res.Reclassify(ignored)
	}
	for i := range classes {
		if ignored[i] {
			classes[i] = scanner.Reachable
		}
	}
	var used []report.SuppressedRule
	for _, r := range s.cfg.Suppressions.Used() {
		used = append(used, report.SuppressedRule{Pattern: r.String(), Count: r.Hits, Bytes: r.Bytes})
	}
	return classes, used
}

// stackRules finds the rule matching each stack of tracked, once per
// stack, when a leaked block asks.
type stackRules struct {
	s      *Session
	stacks []bpf.Block
	rules  []*suppressions.Rule
	known  []bool
}

func (s *Session) stackRules(tracked *trackedSet) *stackRules {
	n := len(tracked.stacks)
	return &stackRules{s: s, stacks: tracked.stacks, rules: make([]*suppressions.Rule, n), known: make([]bool, n)}
}

// of returns the rule matching the stack tag names (nil: none).
func (sr *stackRules) of(tag uint32) *suppressions.Rule {
	if !sr.known[tag] {
		b := sr.stacks[tag]
		frames := report.SymbolizeStack(sr.s.blockPCs(b), sr.s.allocatorName(b), sr.s.symbolizePC)
		sr.rules[tag], sr.known[tag] = sr.s.cfg.Suppressions.Match(frames), true
	}
	return sr.rules[tag]
}

func (s *Session) symbolizePC(pc uint64) []symbolize.Frame {
	if marker, name, ok := bpf.Marker(pc); ok {
		return []symbolize.Frame{{PC: marker, Function: name}}
	}
	if s.proc == nil {
		return []symbolize.Frame{{PC: pc}}
	}
	return s.proc.Symbolize(pc)
}

// allocatorKind tells the scanner how the allocator sizes blocks.
func (s *Session) allocatorKind() scanner.Allocator {
	name := filepath.Base(s.tracer.Allocator().Primary().Path)
	switch {
	case strings.HasPrefix(name, "libc.so") || strings.HasPrefix(name, "libc-"):
		return scanner.Glibc
	case strings.Contains(name, "jemalloc"):
		return scanner.Jemalloc
	}
	return scanner.Unknown
}
