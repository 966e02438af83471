package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
)

// EventType says what an Event reports.
type EventType uint32

const (
	// EventFork: process PID forked Child, which is stopped (SIGSTOP)
	// until AddProcess has put its probes in place and it is continued.
	EventFork EventType = EventType(tracerEventTypeEVENT_FORK)
	// EventExitStop: process PID called _exit and is stopping itself
	// (StopAtExit), its memory intact, for a final check.
	EventExitStop EventType = EventType(tracerEventTypeEVENT_EXIT_STOP)
)

// Event is something a traced process did that lsan must act on.
type Event struct {
	Type  EventType
	PID   int
	Child int
}

// traced is one traced process and its probes.
type traced struct {
	links []link.Link
	// since is when recording began for it (CLOCK_MONOTONIC); 0: with
	// the first process.
	since uint64
}

// Track traces another running process that runs the same program as
// the first (lsan -p PID1,PID2, --comm): the probe sites planned for the
// first are put in place in it, and only then is it registered, so that
// recording starts for malloc, free and the rest at one instant.
func (t *Tracer) Track(pid int) error {
	if err := checkTarget(pid); err != nil {
		return err
	}
	if t.unwinder != nil {
		t.unwinder.expect(pid, true)
		defer t.unwinder.expect(pid, false)
	}
	if err := t.AddProcess(pid); err != nil {
		return err
	}
	t.procs[pid].since = monotonicNow()
	if err := t.addTarget(pid); err != nil {
		t.RemoveProcess(pid)
		return err
	}
	return nil
}

// SharesProbes tells whether pid binds every probed function to the same
// code (file and offset) as the tracer's first process: then the probe
// sites planned for that one are pid's too, and Track can trace it —
// another program using the same libc, or the same program.
func (t *Tracer) SharesProbes(pid int) bool {
	alloc, err := DiscoverAllocator(pid, t.funcs, t.opts.Allocator)
	if err != nil || len(alloc.Bindings) != len(t.allocator.Bindings) {
		return false
	}
	for name, b := range t.allocator.Bindings {
		o, ok := alloc.Bindings[name]
		if !ok || o.FileOffset != b.FileOffset || !sameFile(o.Object.OpenPath, b.Object.OpenPath) {
			return false
		}
	}
	return true
}

// sameFile tells whether two paths name one file (device and inode).
func sameFile(a, b string) bool {
	var sa, sb syscall.Stat_t
	return syscall.Stat(a, &sa) == nil && syscall.Stat(b, &sb) == nil && sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

// recordingSinceOf is when recording began for pid.
func (t *Tracer) recordingSinceOf(pid int) uint64 {
	if p, ok := t.procs[pid]; ok && p.since != 0 {
		return p.since
	}
	return t.recordingSince
}

// addTarget registers pid in the targets map, which every probe checks.
func (t *Tracer) addTarget(pid int) error {
	if err := t.objs.Targets.Put(uint32(pid), tracerTarget{}); err != nil {
		return fmt.Errorf("register pid %d: %w", pid, err)
	}
	return nil
}

// AddProcess puts the probes in place for a child that a traced process
// forked (an EventFork). The child is stopped; the caller continues it.
func (t *Tracer) AddProcess(pid int) error {
	filter := pid
	if t.opts.NoPIDFilter {
		filter = 0
	}
	if t.unwinder != nil {
		// Rows before probes: the first allocation already gets them.
		if err := t.unwinder.addProcess(pid); err != nil {
			return err
		}
	}
	links, err := t.attachProcess(filter)
	if err != nil {
		return fmt.Errorf("pid %d: %w", pid, err)
	}
	t.procs[pid] = &traced{links: links}
	return nil
}

// RemoveProcess forgets a traced process that exited: its probes are
// detached and its blocks deleted. The first process is kept until Close:
// its final report may still be made from the maps.
func (t *Tracer) RemoveProcess(pid int) {
	p, ok := t.procs[pid]
	if !ok || pid == t.opts.PID {
		return
	}
	delete(t.procs, pid)
	t.objs.Targets.Delete(uint32(pid))
	if t.unwinder != nil {
		t.unwinder.removeProcess(pid)
	}
	// Detaching waits for RCU grace periods, and finding the process's
	// blocks reads the whole map: not on the caller's time.
	t.detaching.Add(1)
	go func() {
		defer t.detaching.Done()
		closeLinks(p.links)
		t.deleteBlocksOf(pid)
	}()
}

// Processes lists the traced processes.
func (t *Tracer) Processes() []int {
	out := make([]int, 0, len(t.procs))
	for pid := range t.procs {
		out = append(out, pid)
	}
	return out
}

// watchForks attaches the fork program, after checking that the kernel
// can stop a child before it runs (bpf_send_signal_task, Linux 6.13).
func (t *Tracer) watchForks() error {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return fmt.Errorf("--follow-forks needs the kernel's BTF (/sys/kernel/btf/vmlinux): %w", err)
	}
	var fn *btf.Func
	if err := spec.TypeByName("bpf_send_signal_task", &fn); err != nil {
		return errors.New("--follow-forks needs Linux 6.13 or later (the bpf_send_signal_task kfunc)")
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: t.objs.OnFork})
	if err != nil {
		return fmt.Errorf("attach to tracepoint sched_process_fork: %w", err)
	}
	t.forkLink = l
	return nil
}

// startEvents starts reading the event ring buffer into t.events.
func (t *Tracer) startEvents() error {
	rd, err := ringbuf.NewReader(t.objs.Events)
	if err != nil {
		return fmt.Errorf("open event ring buffer: %w", err)
	}
	t.eventReader = rd
	t.events = make(chan Event, 64)
	go func() {
		defer close(t.events)
		for {
			rec, err := rd.Read()
			if errors.Is(err, os.ErrClosed) || errors.Is(err, ringbuf.ErrFlushed) {
				return
			}
			if err != nil || len(rec.RawSample) < 16 {
				continue
			}
			ev := decodeEvent(rec.RawSample)
			if ev.Type == eventMaps {
				t.loadRows(ev.PID, ev.Child != 0)
				continue
			}
			t.events <- ev
		}
	}()
	return nil
}

func decodeEvent(raw []byte) Event {
	word := func(i int) uint32 { return binary.NativeEndian.Uint32(raw[i:]) }
	return Event{Type: EventType(word(0)), PID: int(word(4)), Child: int(word(8))}
}

// eventMaps: a process mapped new code (execve, the dynamic linker's
// hook); a process of lsan run also stopped itself (stop_for_rows, the
// event's child field 1). The tracer loads the rows at once, and
// continues a stopped one; the session never sees it.
const eventMaps = EventType(tracerEventTypeEVENT_MAPS)

// loadRows loads the unwind rows of pid's new mappings and continues pid
// if it stopped itself for them. A process that exited meanwhile is no
// error.
func (t *Tracer) loadRows(pid int, stopped bool) {
	if stopped {
		defer syscall.Kill(pid, syscall.SIGCONT)
	}
	if t.unwinder == nil || t.opts.lateRowsOnly {
		return
	}
	_ = t.unwinder.addProcess(pid)
	if stopped {
		t.unwinder.mu.Lock()
		t.unwinder.stats.MapStops++
		t.unwinder.mu.Unlock()
	}
}

// Events delivers forks (with FollowForks) and stops at _exit (with
// StopAtExit). The channel is closed by Close.
func (t *Tracer) Events() <-chan Event { return t.events }

// stopFollowing detaches the fork program and continues every process the
// tracer stopped but nobody took from Events: a child stopped at birth, a
// process stopped at _exit. Nothing lsan stopped stays stopped.
func (t *Tracer) stopFollowing() {
	if t.forkLink != nil {
		t.forkLink.Close()
		t.forkLink = nil
	}
	if t.eventReader == nil {
		return
	}
	// Events already in the ring buffer are read out, then the reader
	// ends.
	t.eventReader.Flush()
	for ev := range t.events {
		pid := ev.PID
		if ev.Type == EventFork {
			pid = ev.Child
		}
		syscall.Kill(pid, syscall.SIGCONT)
	}
	t.eventReader.Close()
	t.eventReader = nil
}
