package bpf

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/lsan-project/lsan/unwind"

	"github.com/lsan-project/lsan/internal/procmaps"
)

// UnwindMode says how the probe takes stacks (--unwind).
type UnwindMode int

const (
	// UnwindAuto walks CFI rows where a module has them and frame
	// pointers where it has none (the default).
	UnwindAuto UnwindMode = iota
	// UnwindFP walks frame pointers only (the kernel's bpf_get_stack).
	UnwindFP
	// UnwindCFI walks CFI rows only; code without rows ends the stack
	// with a marker frame.
	UnwindCFI
)

// ParseUnwindMode reads an --unwind value.
func ParseUnwindMode(s string) (UnwindMode, error) {
	switch s {
	case "auto", "":
		return UnwindAuto, nil
	case "fp":
		return UnwindFP, nil
	case "cfi":
		return UnwindCFI, nil
	}
	return 0, fmt.Errorf("unknown unwind mode %q (want auto, fp or cfi)", s)
}

func (m UnwindMode) String() string {
	return [...]string{"auto", "fp", "cfi"}[m]
}

// bpfMode is the value of the BPF program's unwind_mode.
func (m UnwindMode) bpfMode() uint32 {
	switch m {
	case UnwindFP:
		return 0
	case UnwindCFI:
		return 2
	}
	return 1
}

// DefaultMaxUnwindRows bounds the row table: 8 bytes a row, 8 MiB of
// kernel memory (libc has 28k rows, redis-server 40k, libstdc++ 34k).
const DefaultMaxUnwindRows = 1 << 20

// Marker frames end a stack the unwinder had to cut short (see
// bpf/unwind.h); they are never user addresses.
const (
	MarkNoTable    = unwind.MarkNoTable
	MarkExpression = unwind.MarkExpression
	MarkRead       = unwind.MarkRead
	MarkDepth      = unwind.MarkDepth
	MarkBadFrame   = unwind.MarkBadFrame
	MarkStale      = unwind.MarkStale
)

// MarkerName names a marker frame, for reports; ok is false for any
// other address. Callers' frames are looked up at return address - 1, so
// marker-1 is accepted as well (markers are 16 apart).
func MarkerName(pc uint64) (name string, ok bool) {
	_, name, ok = Marker(pc)
	return name, ok
}

// Marker is MarkerName with the marker's own value (pc or pc+1).
func Marker(pc uint64) (marker uint64, name string, ok bool) {
	names := map[uint64]string{
		MarkNoTable:    "[unwind stopped: no CFI for the code]",
		MarkExpression: "[unwind stopped: CFI expression]",
		MarkRead:       "[unwind stopped: stack unreadable]",
		MarkDepth:      "[unwind stopped: stack deeper than 64 frames]",
		MarkBadFrame:   "[unwind stopped: no CFI, no frame pointer]",
		MarkStale:      "[unwind stopped: new program image, tables not loaded yet]",
	}
	if n, ok := names[pc]; ok {
		return pc, n, true
	}
	n, ok := names[pc+1]
	return pc + 1, n, ok
}

// UnwindStats describe the CFI tables loaded and the walks made.
type UnwindStats struct {
	Mode UnwindMode
	// Modules is how many files got rows; Rows their total, TableBytes
	// the kernel memory they take, MaxRows the bound (MaxUnwindRows).
	Modules    int
	Rows       uint32
	MaxRows    uint32
	TableBytes uint64
	// Expressions counts rows the walker cannot evaluate.
	Expressions int
	// ModuleRows is each loaded file's row count (8 bytes a row), by the
	// path the first process to map it saw.
	ModuleRows map[string]uint32
	// OverBudget counts files left without rows because the table was
	// full (their frames are walked by frame pointers in auto mode).
	OverBudget int
	// Walks counts stacks taken with tables; Complete those that reached
	// the outermost frame; the Cut* fields why the others end with a
	// marker; FPFrames the frames unwound by frame pointers in auto mode.
	Walks, Complete                                      uint64
	CutNoTable, CutExpression, CutRead, CutDepth, CutBad uint64
	// CutStale counts stacks taken after an execve, before the new
	// image's tables were loaded (the call site and a marker).
	CutStale uint64
	FPFrames uint64
	// Replays counts the walks the probe's walk cache answered: the same
	// start and the same stack words as a walk it remembered (they are
	// counted in Walks and the outcome fields too).
	Replays uint64
	// Trampolines counts return addresses found replaced by the kernel's
	// uretprobe trampoline (another tool's uretprobe on a function in the
	// stack, or lsan's own at an exit probe): the walk takes the real
	// ones from the kernel, and such walks are not replayed.
	Trampolines uint64
	// Late counts the stacks the probe sent to be walked again in user
	// space (it met code in no mapping it knew, and a module had been
	// mapped since the loader last looked); LateDropped those that did not
	// fit the ring (they keep the probe's stack); LateWalked those walked
	// again; LateFixed those the probe had cut that came out complete
	// (Cut leaves them out).
	Late, LateDropped, LateWalked, LateFixed uint64
	// MapStops counts the times a process of lsan run stopped itself when
	// it mapped new code (execve, the dynamic linker's hook) until its
	// rows were loaded.
	MapStops uint64
}

type loadedMaps struct {
	text       []byte
	generation uint16
	// mapsSeq is the target's count of dynamic linker changes read
	// before text (struct target's maps_seq).
	mapsSeq uint16
	// mappings are those written to unwind_procs.
	mappings []tracerUnwindMapping
}

// RowsMirror receives a copy of the unwind rows and mapping lists as the
// tracer loads them: the in-process recorder walks the same rows.
type RowsMirror interface {
	// Rows are rows first, first+1, ... of the one table all modules share.
	Rows(first uint32, rows []unwind.Row)
	// Mappings are pid's executable mappings, sorted by start.
	Mappings(pid int, ms []UnwindMapping)
}

// UnwindMapping is one executable mapping and its module's rows
// [FirstRow, FirstRow+Rows) (bpf/unwind.h struct unwind_mapping).
type UnwindMapping struct {
	Start, End, Bias uint64
	FirstRow, Rows   uint32
}

// moduleRows is where a file's rows lie in the unwind_rows map.
type moduleRows struct {
	first, n uint32
	progs    []elf.ProgHeader
}

// unwinder loads the CFI rows of the traced processes' executable
// mappings into the BPF maps, and keeps them current as processes map new
// objects.
type unwinder struct {
	mu      sync.Mutex
	cache   *unwind.Cache
	rows    *ebpf.Map
	procs   *ebpf.Map
	targets *ebpf.Map
	modules map[unwind.FileID]*moduleRows
	next    uint32
	max     uint32
	// written counts the mapping lists written to unwind_procs, in
	// epochs (the probe's walk cache forgets its walks when it changes).
	written uint32
	epochs  *ebpf.Map
	stats   UnwindStats
	// firstPID is the process the tracer attached to, pending the ones
	// Track is attaching (see registering).
	firstPID int
	pending  map[int]bool
	// maps is each process's /proc/PID/maps text and program image
	// generation at its last load, so that an unchanged process costs one
	// read.
	maps map[int]loadedMaps
	// mirror gets a copy of what is loaded (Options.RowsMirror).
	mirror RowsMirror
	// tables are the loaded files' tables by their first row, for the
	// walks the loader takes itself (late stacks).
	tables map[uint32]*unwind.Table
	stop   chan struct{}
	done   sync.WaitGroup
}

// newUnwinder starts polling the processes' mappings every interval.
func newUnwinder(rows, procs, targets *ebpf.Map, max uint32, mode UnwindMode, interval time.Duration, mirror RowsMirror) *unwinder {
	u := &unwinder{
		cache:   unwind.NewCache(),
		rows:    rows,
		procs:   procs,
		targets: targets,
		modules: map[unwind.FileID]*moduleRows{},
		max:     max,
		maps:    map[int]loadedMaps{},
		mirror:  mirror,
		tables:  map[uint32]*unwind.Table{},
		stop:    make(chan struct{}),
	}
	u.stats.Mode, u.stats.MaxRows = mode, max
	u.stats.ModuleRows = map[string]uint32{}
	u.done.Add(1)
	go u.poll(interval)
	return u
}

// poll reloads the tables of processes whose mappings changed (dlopen,
// execve), so that new modules get rows soon after they are mapped.
func (u *unwinder) poll(interval time.Duration) {
	defer u.done.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-u.stop:
			return
		case <-tick.C:
			u.refreshAll()
		}
	}
}

func (u *unwinder) refreshAll() {
	u.mu.Lock()
	pids := make([]int, 0, len(u.maps))
	for pid := range u.maps {
		pids = append(pids, pid)
	}
	u.mu.Unlock()
	for _, pid := range pids {
		if err := u.addProcess(pid); errors.Is(err, os.ErrNotExist) || errors.Is(err, ebpf.ErrKeyNotExist) {
			u.removeProcess(pid) // exited: stop looking
		}
	}
}

func (u *unwinder) close() {
	close(u.stop)
	u.done.Wait()
}

// addProcess loads rows for every executable mapping of pid and writes its
// mapping list; it does nothing when the mappings did not change.
// registering tells whether pid is the first process, about to be
// registered: the tracer registers it only after every probe is attached
// (so that recording starts at one instant), and its tables come before
// the probes. Its generation is 0 then.
func (u *unwinder) registering(pid int) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return pid == u.firstPID || u.pending[pid]
}

// expect marks pid as about to be registered (Tracer.Track), or, with
// false, done.
func (u *unwinder) expect(pid int, pending bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.pending == nil {
		u.pending = map[int]bool{}
	}
	if pending {
		u.pending[pid] = true
	} else {
		delete(u.pending, pid)
	}
}

func (u *unwinder) addProcess(pid int) error {
	// The generation first: an execve between the two reads leaves the
	// new mappings marked old, which the next poll corrects (never the
	// reverse, old mappings taken for the new image's).
	var target tracerTarget
	// A RowsLoader's unwinder has no BPF side: no exec generations.
	if u.targets != nil {
		if err := u.targets.Lookup(uint32(pid), &target); err != nil && !u.registering(pid) {
			return fmt.Errorf("unwind tables of pid %d: not a target: %w", pid, err)
		}
	}
	text, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return fmt.Errorf("unwind tables of pid %d: %w", pid, err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	old, known := u.maps[pid]
	if known && old.generation == target.Generation && old.mapsSeq == target.MapsSeq && bytes.Equal(old.text, text) {
		return nil
	}
	list := tracerUnwindMappings{Generation: target.Generation, MapsSeq: target.MapsSeq}
	maps, err := procmaps.Parse(text)
	if err != nil {
		return fmt.Errorf("unwind tables of pid %d: %w", pid, err)
	}
	for _, pm := range maps {
		m := mapping{start: pm.Start, end: pm.End, offset: pm.Offset, perms: pm.Perms, path: pm.Path}
		if !strings.HasPrefix(m.path, "/") || !pm.Executable() {
			continue
		}
		if int(list.N) == len(list.M) {
			break
		}
		if e, ok := u.mappingEntry(pid, m); ok {
			list.M[list.N] = e
			list.N++
		}
	}
	sort.Slice(list.M[:list.N], func(i, j int) bool { return list.M[i].Start < list.M[j].Start })
	mappings := slices.Clone(list.M[:list.N])
	loaded := loadedMaps{text: text, generation: target.Generation, mapsSeq: target.MapsSeq, mappings: mappings}
	sameCode := known && old.generation == target.Generation && slices.Equal(old.mappings, mappings)
	if sameCode && old.mapsSeq == target.MapsSeq {
		// Only mappings without code changed (a heap's mmap).
		u.maps[pid] = loaded
		return nil
	}
	if u.procs != nil {
		if err := u.procs.Put(uint32(pid), &list); err != nil {
			return fmt.Errorf("unwind tables of pid %d: %w", pid, err)
		}
	}
	if sameCode {
		// The same code, read after the linker's last change: the list
		// is current again (struct target's maps_seq); the walks the
		// probe remembers still hold.
		u.maps[pid] = loaded
		return nil
	}
	if u.epochs != nil {
		// After the write: a walk the probe remembers from before it is
		// not replayed after (bpf/unwind.h, enum unwind_epoch).
		u.written++
		if err := u.epochs.Put(tracerUnwindEpochUNWIND_EPOCH_MAPPINGS, u.written); err != nil {
			return fmt.Errorf("unwind tables of pid %d: %w", pid, err)
		}
	}
	if u.mirror != nil {
		ms := make([]UnwindMapping, list.N)
		for i, m := range list.M[:list.N] {
			ms[i] = UnwindMapping{Start: m.Start, End: m.End, Bias: m.Bias, FirstRow: m.FirstRow, Rows: m.Nrows}
		}
		u.mirror.Mappings(pid, ms)
	}
	u.maps[pid] = loaded
	return nil
}

// mappingEntry describes one executable mapping, loading its file's rows
// on first sight.
func (u *unwinder) mappingEntry(pid int, m mapping) (tracerUnwindMapping, bool) {
	// map_files reaches the very file mapped: across containers, and
	// after it was replaced or deleted.
	path := fmt.Sprintf("/proc/%d/map_files/%x-%x", pid, m.start, m.end)
	mod, err := u.module(path, m.path)
	if err != nil {
		return tracerUnwindMapping{}, false
	}
	// The executable segment: with lld's layout a read-only segment's
	// last page is the same file page as the text's first one, and
	// would give a bias one page off.
	for _, p := range mod.progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && m.offset >= p.Off&^4095 && m.offset < p.Off+p.Filesz {
			vaddr := p.Vaddr + m.offset - p.Off
			return tracerUnwindMapping{Start: m.start, End: m.end, Bias: m.start - vaddr, FirstRow: mod.first, Nrows: mod.n}, true
		}
	}
	return tracerUnwindMapping{}, false
}

// module returns where a file's rows are, loading them on first use.
func (u *unwinder) module(path, name string) (*moduleRows, error) {
	id, err := unwind.IDOf(path)
	if err != nil {
		return nil, err
	}
	if mod, ok := u.modules[id]; ok {
		return mod, nil
	}
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	progs := make([]elf.ProgHeader, 0, len(f.Progs))
	for _, p := range f.Progs {
		progs = append(progs, p.ProgHeader)
	}
	f.Close()
	mod := &moduleRows{progs: progs}
	u.modules[id] = mod
	tab, _, err := u.cache.Get(path)
	if err != nil || len(tab.Rows) == 0 {
		return mod, nil // no rows: frame pointers in auto mode
	}
	if uint64(u.next)+uint64(len(tab.Rows)) > uint64(u.max) {
		u.stats.OverBudget++
		return mod, nil
	}
	if err := u.writeRows(u.next, tab.Rows); err != nil {
		return mod, err
	}
	mod.first, mod.n = u.next, uint32(len(tab.Rows))
	u.tables[mod.first] = tab
	u.next += mod.n
	u.stats.Modules++
	u.stats.ModuleRows[name] = mod.n
	u.stats.Rows = u.next
	u.stats.TableBytes = uint64(u.next) * 8
	u.stats.Expressions += tab.Expressions
	return mod, nil
}

func (u *unwinder) writeRows(first uint32, rows []unwind.Row) error {
	if u.mirror != nil {
		u.mirror.Rows(first, rows)
	}
	if u.rows == nil {
		return nil
	}
	keys := make([]uint32, len(rows))
	vals := make([]tracerUnwindRow, len(rows))
	for i, r := range rows {
		keys[i] = first + uint32(i)
		vals[i] = tracerUnwindRow{Pc: r.PC, CfaOffset: r.CFAOffset, Kind: uint8(r.Kind), RbpOffset8: r.RBPOffset8}
	}
	_, err := u.rows.BatchUpdate(keys, vals, nil)
	if errors.Is(err, ebpf.ErrNotSupported) {
		for i := range keys {
			if err := u.rows.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("load unwind rows: %w", err)
	}
	return nil
}

func (u *unwinder) removeProcess(pid int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.maps, pid)
	if u.procs != nil {
		_ = u.procs.Delete(uint32(pid))
	}
}

// RefreshUnwind reloads the tables of processes whose mappings changed
// since the last look (also done in the background every 100 ms).
func (t *Tracer) RefreshUnwind() {
	if t.unwinder != nil {
		t.unwinder.refreshAll()
	}
}

// UnwindStats reports the tables loaded and the walks' outcomes.
func (t *Tracer) UnwindStats() UnwindStats {
	if t.unwinder == nil {
		return UnwindStats{Mode: t.opts.Unwind}
	}
	s := t.unwinder.loadStats()
	for key, dst := range map[tracerUnwindCounter]*uint64{
		tracerUnwindCounterUNWIND_COUNTER_STACKS:       &s.Walks,
		tracerUnwindCounterUNWIND_COUNTER_COMPLETE:     &s.Complete,
		tracerUnwindCounterUNWIND_COUNTER_NO_TABLE:     &s.CutNoTable,
		tracerUnwindCounterUNWIND_COUNTER_EXPRESSION:   &s.CutExpression,
		tracerUnwindCounterUNWIND_COUNTER_READ:         &s.CutRead,
		tracerUnwindCounterUNWIND_COUNTER_DEPTH:        &s.CutDepth,
		tracerUnwindCounterUNWIND_COUNTER_BAD_FRAME:    &s.CutBad,
		tracerUnwindCounterUNWIND_COUNTER_FP_FRAMES:    &s.FPFrames,
		tracerUnwindCounterUNWIND_COUNTER_STALE:        &s.CutStale,
		tracerUnwindCounterUNWIND_COUNTER_REPLAYS:      &s.Replays,
		tracerUnwindCounterUNWIND_COUNTER_TRAMPOLINES:  &s.Trampolines,
		tracerUnwindCounterUNWIND_COUNTER_LATE:         &s.Late,
		tracerUnwindCounterUNWIND_COUNTER_LATE_DROPPED: &s.LateDropped,
	} {
		var perCPU []uint64
		if err := t.objs.UnwindCounters.Lookup(key, &perCPU); err != nil {
			continue
		}
		for _, v := range perCPU {
			*dst += v
		}
	}
	if l := t.late; l != nil {
		l.mu.Lock()
		s.LateWalked, s.LateFixed = l.walked, l.fixed
		l.mu.Unlock()
	}
	return s
}

// Cut is how many stacks ended with a marker frame.
func (s UnwindStats) Cut() uint64 {
	return s.CutNoTable + s.CutExpression + s.CutRead + s.CutDepth + s.CutBad + s.CutStale - s.LateFixed
}

// ProbeTimes is the kernel's count of runs and total run time of the
// return probe, where blocks are recorded and stacks taken (the BPF time
// per allocation), and the total run time of the entry and free probes
// beside it. Zero unless BPF run-time stats are enabled (ebpf.EnableStats,
// or sysctl kernel.bpf_stats_enabled).
func (t *Tracer) ProbeTimes() (runs uint64, ret, others time.Duration, err error) {
	s, err := t.objs.AllocReturn.Stats()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read return probe stats: %w", err)
	}
	for _, p := range []*ebpf.Program{t.objs.AllocEnter, t.objs.FreeEnter} {
		ps, err := p.Stats()
		if err != nil {
			return 0, 0, 0, fmt.Errorf("read probe stats: %w", err)
		}
		others += ps.Runtime
	}
	return s.RunCount, s.Runtime, others, nil
}

// RowsLoader computes the unwind rows of processes' executable mappings
// for a mirror only, with no BPF program: lsan run's in-process recorder
// walks them itself. Mappings are re-read every 100 ms and on Refresh.
type RowsLoader struct{ u *unwinder }

// NewRowsLoader starts a loader of at most maxRows rows (0: the default).
func NewRowsLoader(mode UnwindMode, maxRows uint32, mirror RowsMirror) *RowsLoader {
	if maxRows == 0 {
		maxRows = DefaultMaxUnwindRows
	}
	return &RowsLoader{u: newUnwinder(nil, nil, nil, maxRows, mode, 100*time.Millisecond, mirror)}
}

// AddProcess loads the rows of pid's mappings, or reloads them when they
// changed.
func (l *RowsLoader) AddProcess(pid int) error { return l.u.addProcess(pid) }

// RemoveProcess forgets pid.
func (l *RowsLoader) RemoveProcess(pid int) { l.u.removeProcess(pid) }

// Stats reports the tables loaded.
func (l *RowsLoader) Stats() UnwindStats { return l.u.loadStats() }

// loadStats copies what the unwinder has loaded so far.
func (u *unwinder) loadStats() UnwindStats {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.stats
	s.ModuleRows = maps.Clone(s.ModuleRows)
	return s
}

// Close stops the polling.
func (l *RowsLoader) Close() { l.u.close() }
