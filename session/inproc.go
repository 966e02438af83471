package session

import (
	"errors"
	"os"
	"strings"

	"github.com/lsan-project/lsan/bpf"
	"github.com/lsan-project/lsan/inproc"
)

// startRecorder prepares lsan run's in-process recorder (Config.InProc)
// and returns what the command needs for it. Where it cannot be had,
// lsan says why and records with uprobes.
func (s *Session) startRecorder() Extras {
	if !s.cfg.InProc {
		return Extras{}
	}
	lib, release, err := inproc.Library()
	if err == nil {
		s.releaseLibrary = release
		s.rec, err = inproc.New(inproc.Options{
			Unwind: s.cfg.Tracer.Unwind,
			// Following forks takes the kernel (a child is stopped
			// before it runs); one process, the library alone.
			Lifecycle:     !s.cfg.Tracer.FollowForks,
			RowsRequested: s.loadRows,
		})
	}
	if err != nil {
		s.cfg.Log("lsan: %v: recording with uprobes", err)
		return Extras{}
	}
	return Extras{Env: s.rec.Env(lib), Files: []*os.File{s.rec.File()}}
}

// errUseUprobes: the command, held before any of its code ran, is to be
// started again without the in-process recorder.
var errUseUprobes = errors.New("the in-process recorder cannot record this command")

// chooseRecorder decides, with the command held before any of its code
// ran, whether the in-process recorder sees its allocations: its library
// must be loaded, and no allocator function the command has may be one it
// does not interpose. Otherwise lsan says why in one line, and the
// command is started again, recorded with uprobes (errUseUprobes).
func (s *Session) chooseRecorder(pid int) error {
	if s.rec == nil {
		return nil
	}
	why := ""
	if !s.rec.Loaded(pid) {
		// Nothing of it in the command: no need to start it again.
		s.cfg.Log("lsan: the in-process recorder could not be loaded into the command (a static or setuid binary?): recording with uprobes")
		s.rec.Close()
		s.rec = nil
		return nil
	}
	if len(s.cfg.Tracer.Funcs) > 0 {
		why = "allocator functions named with --alloc-fn and the like are probed"
	} else if alloc, err := bpf.DiscoverAllocator(pid, bpf.AllocatorFuncs, s.cfg.Tracer.Allocator); err != nil {
		why = err.Error()
	} else if unknown := inproc.Unknown(pid, alloc, bpf.AllocatorFuncs); len(unknown) > 0 {
		why = "the command's allocator has functions the in-process recorder does not intercept (" + strings.Join(unknown, ", ") + ")"
	} else {
		s.cfg.Tracer.Discovered = alloc
	}
	if why != "" {
		s.cfg.Log("lsan: %s: recording with uprobes", why)
		s.rec.Close()
		s.rec = nil
		return errUseUprobes
	}
	s.cfg.Tracer.LifecycleOnly = true
	s.cfg.Tracer.RowsMirror = s.rec
	return nil
}

// attachRecorder follows the command through the in-process recorder
// alone (Options.Lifecycle): the library announces the exit and new code,
// the rows are computed for it without BPF. No kernel object is made, so
// none has to be released at the end (closing uprobe links waits an RCU
// grace period each: most of lsan run's fixed cost otherwise).
func (s *Session) attachRecorder(pid int) error {
	alloc := s.cfg.Tracer.Discovered
	rows := bpf.NewRowsLoader(s.cfg.Tracer.Unwind, s.cfg.Tracer.MaxUnwindRows, s.rec)
	rt := &recorderTracer{Recorder: s.rec, alloc: alloc, rows: rows, events: make(chan bpf.Event, 64), stop: make(chan struct{})}
	s.rows = rows
	if s.cfg.Tracer.Unwind != bpf.UnwindFP {
		if err := rows.AddProcess(pid); err != nil {
			s.cfg.Log("lsan: warning: %v", err)
		}
	}
	go rt.forwardExits()
	s.rec.SetFuncs(bpf.AllocatorFuncs)
	s.tracer, s.allocs = rt, s.rec
	return nil
}

// loadRows is the recorder's RowsRequested: the library waits while it
// runs.
func (s *Session) loadRows(pid int) {
	if s.rows != nil && s.cfg.Tracer.Unwind != bpf.UnwindFP {
		_ = s.rows.AddProcess(pid)
	}
}

// recorderTracer stands in for the BPF tracer when the in-process
// recorder follows the command alone: exits come from the library, as
// EventExitStop events of a process that waits (not stopped) for
// Recorder.ExitDone.
type recorderTracer struct {
	*inproc.Recorder
	alloc  *bpf.Allocator
	rows   *bpf.RowsLoader
	events chan bpf.Event
	stop   chan struct{}
}

func (t *recorderTracer) forwardExits() {
	for {
		select {
		case <-t.stop:
			return
		case pid := <-t.Exits():
			select {
			case t.events <- bpf.Event{Type: bpf.EventExitStop, PID: pid}:
			case <-t.stop:
				t.ExitDone() // nobody will check it: let it go
				return
			}
		}
	}
}

func (t *recorderTracer) Allocator() *bpf.Allocator       { return t.alloc }
func (t *recorderTracer) Probes() []bpf.Probe             { return nil }
func (t *recorderTracer) Funcs() []bpf.AllocatorFunc      { return bpf.AllocatorFuncs }
func (t *recorderTracer) Counters() (bpf.Counters, error) { return bpf.Counters{}, nil }
func (t *recorderTracer) UnwindStats() bpf.UnwindStats    { return t.rows.Stats() }
func (t *recorderTracer) MaxBlocks() uint32               { return 0 }
func (t *recorderTracer) PruneLive() (int, error)         { return 0, nil }
func (t *recorderTracer) PruneStacks() (int, error)       { return 0, nil }
func (t *recorderTracer) Events() <-chan bpf.Event        { return t.events }
func (t *recorderTracer) AddProcess(pid int) error        { return t.rows.AddProcess(pid) }
func (t *recorderTracer) RemoveProcess(pid int)           { t.rows.RemoveProcess(pid) }
func (t *recorderTracer) SharesProbes(int) bool           { return false }
func (t *recorderTracer) Track(pid int) error {
	return errors.New("the in-process recorder follows one process")
}

// FuncName names a Block.Fn (bpf.AllocatorFuncs' index).
func (t *recorderTracer) FuncName(fn uint16) string {
	if int(fn) < len(bpf.AllocatorFuncs) {
		return bpf.AllocatorFuncs[fn].Name
	}
	return ""
}

// Close stops following; the session closes the recorder itself.
func (t *recorderTracer) Close() error {
	close(t.stop)
	t.rows.Close()
	return nil
}

// noteUnannouncedExit: a command followed by the in-process recorder
// alone that ended without asking for its exit check ran its last program
// image without lsan's library (LD_PRELOAD cleared before an execve) or
// left without exit() or _exit. Nothing could be checked: lsan says so, in
// a report marked as such, and the run ends as incomplete, never clean.
func (s *Session) noteUnannouncedExit(res *RunResult) {
	if s.rec == nil || !s.rec.Lifecycle() || res.Checked || s.cfg.NoFinalCheck || res.Status >= 128 {
		return
	}
	s.cfg.Log("lsan: pid %d ended without the in-process recorder's exit check (its last program ran without lsan's library, LD_PRELOAD cleared before an execve?, or it left without exit() or _exit): no leak check possible", s.cfg.PID)
	r := s.newReport(true)
	r.NoCheck = true
	r.Dropped.Unrecorded++
	if err := s.symbolizeAndWrite(r); err != nil {
		s.cfg.Log("lsan: %v", err)
	}
	res.Incomplete = true
}
