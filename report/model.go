// Package report holds the model of one check's result (groups of blocks
// by allocation stack, totals, statistics) and writes it in lsan's formats.
// The model is independent of its formats, so that snapshots can later be
// stored and rendered again.
package report

import (
	"fmt"
	"sort"
	"time"

	"github.com/lsan-project/lsan/symbolize"
)

// Kind classifies a group of blocks.
type Kind string

const (
	Direct      Kind = "direct"      // unreachable, and no other leaked block points to it
	Indirect    Kind = "indirect"    // unreachable, but pointed to by another leaked block
	Outstanding Kind = "outstanding" // live (outstanding mode makes no reachability claim)
)

// Mode is the kind of check that produced a report.
type Mode string

const (
	ModeLeaks       Mode = "leaks"
	ModeOutstanding Mode = "outstanding"
)

// Object is one block of a group, for reports that list addresses.
type Object struct {
	Addr uint64 `json:"addr"`
	Size uint64 `json:"size"`
}

// Group is every block of one kind allocated from one stack.
type Group struct {
	Kind  Kind
	Bytes uint64
	Count int
	// Key identifies the allocation stack (Entry.Key).
	Key uint64
	// Allocator names the allocator function of frame 0 as it was called
	// (malloc, not its internal alias __libc_malloc), when known.
	Allocator string
	// PCs are the stack's lookup addresses, innermost first (the allocator
	// function, then each caller's return address minus one).
	PCs []uint64
	// Stack is PCs symbolized (inlined frames expanded).
	Stack   []symbolize.Frame
	Objects []Object
	// Suggestion is a ready-to-paste suppression rule for the group
	// (--print-suppressions); "" when none is safe to suggest.
	Suggestion string
	// Trend is the group's series over the checks so far (nil before a
	// timeline exists: a single check).
	Trend *Trend
	// BaselineBytes is the group's size in the --baseline, when it was
	// there and smaller (nil: new since the baseline, or no baseline).
	BaselineBytes *uint64
}

// SuppressedRule is a suppression rule that hid blocks in this check.
type SuppressedRule struct {
	// Pattern is the rule as written in a file: "leak:TEMPLATE".
	Pattern string `json:"pattern"`
	Count   int    `json:"count"`
	Bytes   uint64 `json:"bytes"`
}

// Stats describe the work of one check.
type Stats struct {
	Blocks       int     `json:"blocks"`
	ScannedBytes uint64  `json:"scanned_bytes"`
	PausedMS     float64 `json:"paused_ms"`
	CheckMS      float64 `json:"check_ms"`
	Threads      int     `json:"threads,omitempty"`
	// ExitedStacks counts the cached stacks of exited threads left out of
	// the roots; FreedBytes the freed memory left out (attach mode).
	ExitedStacks int    `json:"exited_thread_stacks,omitempty"`
	FreedBytes   uint64 `json:"freed_bytes,omitempty"`
	// Allocs and Frees count the tracked allocations and releases of
	// tracked blocks since attach: the target's allocation rate.
	Allocs uint64 `json:"allocs_since_attach"`
	Frees  uint64 `json:"frees_since_attach"`
	// StacksCut counts the stacks the unwinder cut short since attach
	// (each ends with a marker frame naming why); UnwindTableBytes is
	// the kernel memory of the CFI rows loaded (docs/unwind.md).
	StacksCut        uint64 `json:"stacks_cut,omitempty"`
	UnwindTableBytes uint64 `json:"unwind_table_bytes,omitempty"`
	// StacksLate counts the stacks lsan walked again itself because a
	// module was mapped (dlopen, execve) moments before the allocation,
	// before the probe had its rows (docs/unwind.md, "Late stacks").
	StacksLate uint64 `json:"stacks_walked_late,omitempty"`
	// Snapshot is how the check froze the target: "fork" (a
	// copy-on-write copy was scanned, the target paused only to make it)
	// or "stop" (stopped for the whole scan).
	Snapshot string `json:"snapshot,omitempty"`
	// Unconfirmed counts the blocks a fork snapshot found unreferenced
	// for the first time: held back, reported at the next check if they
	// are still unreferenced then (in the last check, which takes a
	// second snapshot at once to confirm its first: not reported).
	Unconfirmed int `json:"unconfirmed_blocks,omitempty"`
	// Snapshots is how many times the check froze the target: 2 when the
	// last check of a fork-mode run took a second copy to confirm the
	// first (PausedMS and CheckMS then cover both).
	Snapshots int `json:"snapshots,omitempty"`
}

// Dropped counts what lsan lost since attach, by cause.
type Dropped struct {
	// Allocs: allocations not recorded (block map full).
	Allocs uint64 `json:"allocs"`
	// Stacks: allocation stacks not stored (stack map full): the blocks
	// are checked, their stacks shown short.
	Stacks uint64 `json:"stacks"`
	// Frees: frees not seen (found when the allocator handed the same
	// address out again).
	Frees uint64 `json:"frees"`
	// Calls: allocator calls not followed (in-flight map full).
	Calls uint64 `json:"calls"`
	// Events: forks and stops at exit not reported (ring buffer full).
	Events uint64 `json:"events"`
	// UnreadableBytes: root or block memory the check could not read.
	UnreadableBytes uint64 `json:"unreadable_bytes"`
	// Unrecorded: what lsan run's in-process recorder could not record:
	// allocations made after it took lsan for gone, program images it
	// was not loaded in (LD_PRELOAD cleared before an execve).
	Unrecorded uint64 `json:"unrecorded,omitempty"`
}

// Lost says whether anything was lost that can change the verdict: a
// block lsan did not record, a free it did not see, memory it could not
// read can each make a live block look leaked or hide a leak. Lost stacks
// only shorten what is shown.
func (d Dropped) Lost() bool {
	return d.Allocs > 0 || d.Frees > 0 || d.Calls > 0 || d.Events > 0 || d.UnreadableBytes > 0 || d.Unrecorded > 0
}

// Complete says whether nothing at all was lost.
func (d Dropped) Complete() bool { return !d.Lost() && d.Stacks == 0 }

// losses describes, for people, what was lost.
func (d Dropped) losses() []string {
	var out []string
	add := func(n uint64, what string) {
		if n > 0 {
			out = append(out, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(d.Allocs, "allocation(s) not recorded (block map full: raise --max-blocks)")
	add(d.Frees, "free(s) not seen")
	add(d.Calls, "allocator call(s) not followed")
	add(d.Events, "fork or exit event(s) lost")
	add(d.UnreadableBytes, "byte(s) of memory unreadable")
	add(d.Unrecorded, "allocation(s) or program image(s) the in-process recorder could not record")
	add(d.Stacks, "stack(s) not stored (stack map full: raise --max-stacks)")
	return out
}

// Report is the result of one check.
type Report struct {
	PID    int
	Time   time.Time
	Mode   Mode
	Groups []Group
	// Omitted counts the groups left out by a top-N limit.
	Omitted    int
	Suppressed []SuppressedRule
	Stats      Stats
	Dropped    Dropped
	// SampleRate is N when 1 in N allocations was tracked (0 or 1: all).
	SampleRate uint32
	// MinAge is the --older filter of outstanding reports.
	MinAge time.Duration
	// Final is set on the last report of a run (signal or target exit).
	Final bool
	// NoCheck marks the record of a run in which no check could run (the
	// target exited before the first one): no leaks found is not no leaks.
	NoCheck bool
	// Modules is the process's module map at the check (executable
	// mappings: path, build-id, load bias), for formats that carry it
	// (pprof mappings) and for recordings.
	Modules []symbolize.Module
	// History is the series of checks this report ends (nil: no timeline).
	History *History
	// Gone are groups seen in earlier checks and absent from this one.
	Gone []Group
	// Hidden counts groups left out by --only-growing or --baseline.
	Hidden int
	// HiddenWhy says which filter hid them.
	HiddenWhy string
}

// TotalBytes and TotalCount sum the groups of the report.
func (r *Report) TotalBytes() uint64 {
	var n uint64
	for _, g := range r.Groups {
		n += g.Bytes
	}
	return n
}

func (r *Report) TotalCount() int {
	n := 0
	for _, g := range r.Groups {
		n += g.Count
	}
	return n
}

// Entry is one block to be grouped.
type Entry struct {
	Kind Kind
	// Key identifies the allocation stack (equal keys, equal stacks).
	Key  uint64
	Addr uint64
	Size uint64
}

// BuildGroups groups entries by (kind, stack) and orders the groups as
// LSan does: direct before indirect, then by bytes, largest first.
func BuildGroups(entries []Entry, keepObjects bool) []Group {
	g := NewGrouper(keepObjects)
	for _, e := range entries {
		g.Add(e)
	}
	return g.Groups()
}

// Grouper groups entries by (kind, stack) as they come: a check that
// finds a million leaked blocks need not list them first.
type Grouper struct {
	keepObjects bool
	index       map[groupKey]int
	groups      []Group
}

type groupKey struct {
	kind Kind
	key  uint64
}

// NewGrouper returns an empty Grouper; keepObjects keeps every entry's
// address and size in its group's Objects.
func NewGrouper(keepObjects bool) *Grouper {
	return &Grouper{keepObjects: keepObjects, index: map[groupKey]int{}}
}

// Add counts e in its group.
func (gr *Grouper) Add(e Entry) {
	k := groupKey{e.Kind, e.Key}
	i, ok := gr.index[k]
	if !ok {
		i = len(gr.groups)
		gr.index[k] = i
		gr.groups = append(gr.groups, Group{Kind: e.Kind, Key: e.Key})
	}
	g := &gr.groups[i]
	g.Bytes += e.Size
	g.Count++
	if gr.keepObjects {
		g.Objects = append(g.Objects, Object{Addr: e.Addr, Size: e.Size})
	}
}

// Groups returns the groups, ordered as BuildGroups orders them.
func (gr *Grouper) Groups() []Group {
	SortGroups(gr.groups)
	return gr.groups
}

// SortGroups orders groups: direct, indirect, outstanding; then bytes
// descending; ties by count, then by stack key, so output is stable.
func SortGroups(groups []Group) {
	rank := map[Kind]int{Direct: 0, Indirect: 1, Outstanding: 2}
	sort.SliceStable(groups, func(i, j int) bool {
		a, b := groups[i], groups[j]
		if rank[a.Kind] != rank[b.Kind] {
			return rank[a.Kind] < rank[b.Kind]
		}
		if a.Bytes != b.Bytes {
			return a.Bytes > b.Bytes
		}
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Key < b.Key
	})
	for i := range groups {
		sort.Slice(groups[i].Objects, func(x, y int) bool { return groups[i].Objects[x].Addr < groups[i].Objects[y].Addr })
	}
}

// Symbolize fills every group's Stack. Frame 0 is the allocator function
// entry: it gets the name the program called it by, as LSan names its
// interceptor.
func (r *Report) Symbolize(lookup func(pc uint64) []symbolize.Frame) {
	for i := range r.Groups {
		g := &r.Groups[i]
		g.Stack = SymbolizeStack(g.PCs, g.Allocator, lookup)
	}
}

// SymbolizeStack symbolizes one stack; allocator, when set, names frame 0.
func SymbolizeStack(pcs []uint64, allocator string, lookup func(pc uint64) []symbolize.Frame) []symbolize.Frame {
	var stack []symbolize.Frame
	for j, pc := range pcs {
		frames := lookup(pc)
		if j == 0 && allocator != "" && len(frames) > 0 {
			f := frames[len(frames)-1]
			f.Function, f.Inlined = allocator, false
			frames = []symbolize.Frame{f}
		}
		stack = append(stack, frames...)
	}
	return stack
}

// Top keeps the n largest groups (0: all) and counts the rest in Omitted.
func (r *Report) Top(n int) {
	if n > 0 && len(r.Groups) > n {
		r.Omitted += len(r.Groups) - n
		r.Groups = r.Groups[:n]
	}
}
