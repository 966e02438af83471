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
	lib, err := inproc.Library()
	if err == nil {
		s.rec, err = inproc.New(inproc.Options{Unwind: s.cfg.Tracer.Unwind})
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
