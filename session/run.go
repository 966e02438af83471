package session

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/lsan-project/lsan/bpf"
	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/symbolize"
	"golang.org/x/sys/unix"
)

// RunResult is how `lsan run` ended.
type RunResult struct {
	// Status is the command's own exit status (128+N when signal N
	// killed it), what lsan exits with when no leak was found.
	Status int
	// Checked says whether a leak check ran; Leaks whether it found any;
	// Incomplete whether a check ran on data that lacked something that
	// can change its verdict.
	Checked, Leaks, Incomplete bool
}

// RunCommand starts argv with every probe in place at its entry point,
// runs a leak check when it calls _exit (the probe makes it stop itself
// there, memory and threads intact), lets it finish and returns its
// status. Signals received on sigs are passed on to the command; SIGINT
// first runs a check of the live command, so that one that never exits
// still gets its report.
func RunCommand(cfg Config, argv []string, sigs <-chan os.Signal) (RunResult, error) {
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	s := &Session{cfg: cfg, syms: symbolize.New(cfg.Symbolize), runMode: true}
	extra := s.startRecorder()
	proc, err := Launch(argv[0], argv, extra, func(pid int) error { return s.attachChild(pid) })
	if errors.Is(err, errUseUprobes) {
		// Killed before any of its code ran: started again without the
		// in-process recorder's library, which would sit in every stack.
		proc, err = Launch(argv[0], argv, Extras{}, func(pid int) error { return s.attachChild(pid) })
	}
	if err != nil {
		s.Close()
		return RunResult{}, err
	}
	defer s.Close()
	s.refreshMappings()
	return s.superviseChild(proc, sigs)
}

// attachChild attaches the tracer to the child held at its entry point.
func (s *Session) attachChild(pid int) error {
	s.cfg.PID = pid
	s.cfg.Tracer.PID = pid
	s.cfg.Tracer.StopAtExit = !s.cfg.NoFinalCheck
	if s.cfg.ReturnProbes != ReturnUretprobe {
		// The check at exit must match LSan's: no copies planted.
		s.cfg.Tracer.ExitProbes = true
	}
	if err := s.chooseRecorder(pid); err != nil {
		return err
	}
	if s.rec != nil && s.rec.Lifecycle() {
		if err := s.attachRecorder(pid); err != nil {
			return err
		}
		s.logProbes()
		s.watchLosses()
		return nil
	}
	t, err := bpf.Attach(s.cfg.Tracer)
	if err != nil {
		return err
	}
	s.tracer, s.allocs = t, t
	if s.rec != nil {
		s.rec.SetFuncs(t.Funcs())
		s.allocs = s.rec
	}
	s.logProbes()
	s.watchLosses()
	return nil
}

// superviseChild watches the child until it exits. It never waits on
// the child while it lives: during a check the scanner traces the child,
// and a wait from here could take the scanner's ptrace stops. Stops at
// _exit and forks come from the tracer's events; the exit through a
// pidfd; only then is the child reaped.
func (s *Session) superviseChild(proc *os.Process, sigs <-chan os.Signal) (RunResult, error) {
	var res RunResult
	exited, err := exitNotifier(proc.Pid)
	if err != nil {
		return res, err
	}
	s.exited = exited
	f := &family{root: s, children: map[int]*Session{}, exits: make(chan int, 16)}
	prune := time.NewTicker(stackPruneInterval)
	defer prune.Stop()
	checks, stopChecks := s.periodicChecks()
	defer stopChecks()
	for {
		select {
		case <-prune.C:
			s.pruneLive()
		case <-checks:
			f.checkLive()
		case <-exited:
			f.release()
			res, err := s.reap(proc, res)
			if err == nil {
				s.noteUnannouncedExit(&res)
			}
			return res, err
		case ev := <-s.tracer.Events():
			f.handle(ev, &res)
		case pid := <-f.exits:
			f.forget(pid)
		case sig := <-sigs:
			if sig == os.Interrupt && !res.Checked {
				s.cfg.Log("lsan: interrupted: checking pid %d before passing the signal on", proc.Pid)
				f.checkAll(&res)
			}
			proc.Signal(sig)
		}
	}
}

// family is the command and, with --follow-forks, the descendants lsan
// follows: one view (a Session sharing the tracer) per process, each
// checked and reported on its own.
type family struct {
	root     *Session
	children map[int]*Session
	exits    chan int
}

func (f *family) handle(ev bpf.Event, res *RunResult) {
	switch ev.Type {
	case bpf.EventFork:
		f.follow(ev)
	case bpf.EventExitStop:
		if f.root.rec != nil && f.root.rec.Lifecycle() {
			if f.root.cfg.NoFinalCheck {
				f.root.rec.ExitDone() // leak_check_at_exit=0
				return
			}
			f.checkAnnouncedExit(ev.PID, res)
			return
		}
		f.checkAtExit(ev.PID, res)
	}
}

// follow puts the probes in place for a child that the tracer stopped at
// birth, then lets it run. It is continued even when that fails.
func (f *family) follow(ev bpf.Event) {
	defer syscall.Kill(ev.Child, syscall.SIGCONT)
	if err := f.root.tracer.AddProcess(ev.Child); err != nil {
		f.root.cfg.Log("lsan: warning: not following pid %d: %v", ev.Child, err)
		f.root.tracer.RemoveProcess(ev.Child)
		return
	}
	exited, err := exitNotifier(ev.Child)
	if err != nil {
		f.root.tracer.RemoveProcess(ev.Child)
		return
	}
	child := f.root.viewOf(ev.Child, exited)
	f.children[ev.Child] = child
	go func() {
		<-exited
		f.exits <- ev.Child
	}()
	f.root.cfg.Log("lsan: following pid %d, forked by pid %d", ev.Child, ev.PID)
}

// viewOf is a Session for another process of the family: its own
// target and mappings (snapshot when it is checked), the shared tracer and
// symbolizer.
func (s *Session) viewOf(pid int, exited <-chan struct{}) *Session {
	v := &Session{cfg: s.cfg, tracer: s.tracer, allocs: s.allocs, syms: s.syms, exited: exited, runMode: s.runMode}
	v.cfg.PID = pid
	return v
}

// checkAtExit runs the final check of a process stopped at _exit, then
// lets it exit.
func (f *family) checkAtExit(pid int, res *RunResult) {
	defer syscall.Kill(pid, syscall.SIGCONT)
	v := f.viewFor(pid)
	if v == nil || !waitStopped(pid, time.Second) {
		return
	}
	v.exitChecked = true
	if v.checkAtExit() && v == f.root {
		res.Checked = true
	}
	res.Leaks = res.Leaks || v.lastLeak
	res.Incomplete = res.Incomplete || v.lastLost
}

// checkAnnouncedExit runs the final check of a process whose in-process
// recorder announced its exit and waits, running, for the answer.
func (f *family) checkAnnouncedExit(pid int, res *RunResult) {
	defer f.root.rec.ExitDone()
	v := f.viewFor(pid)
	if v != f.root {
		// A child, checked below or not followed: done with it.
		defer f.root.rec.Forget(pid)
	}
	if v == nil {
		return
	}
	v.exitChecked = true
	if v.checkAtExit() && v == f.root {
		res.Checked = true
	}
	res.Leaks = res.Leaks || v.lastLeak
	res.Incomplete = res.Incomplete || v.lastLost
}

func (f *family) viewFor(pid int) *Session {
	if pid == f.root.cfg.PID {
		return f.root
	}
	return f.children[pid]
}

// checkAll checks every live process of the family (SIGINT: a command
// that never exits still gets its reports).
func (f *family) checkAll(res *RunResult) {
	if !f.root.exitChecked {
		res.Checked = f.root.checkAndReport()
		res.Leaks = f.root.lastLeak
		res.Incomplete = f.root.lastLost
	}
	for _, pid := range slices.Sorted(maps.Keys(f.children)) {
		v := f.children[pid]
		if !v.targetExited() && !v.exitChecked && v.checkAndReport() {
			res.Leaks = res.Leaks || v.lastLeak
			res.Incomplete = res.Incomplete || v.lastLost
		}
	}
}

// forget drops a child that exited; one that never stopped at _exit
// (killed by a signal, or running a program whose exit lsan does not
// probe) had no check.
func (f *family) forget(pid int) {
	if v, ok := f.children[pid]; ok && !v.checked {
		f.root.cfg.Log("lsan: pid %d ended without calling exit (killed by a signal?): no leak check possible", pid)
	}
	delete(f.children, pid)
	f.root.tracer.RemoveProcess(pid)
	if f.root.rec != nil {
		f.root.rec.Forget(pid)
	}
}

// release stops following the children still running when the command
// exits: lsan does not wait for them (they may be daemons).
func (f *family) release() {
	for _, pid := range slices.Sorted(maps.Keys(f.children)) {
		if !f.children[pid].targetExited() {
			f.root.cfg.Log("lsan: pid %d still runs after pid %d exited: no longer followed", pid, f.root.cfg.PID)
		}
		f.root.tracer.RemoveProcess(pid)
	}
	f.children = map[int]*Session{}
}

// reap collects the exit status of the child.
func (s *Session) reap(proc *os.Process, res RunResult) (RunResult, error) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(proc.Pid, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("wait for pid %d: %w", proc.Pid, err)
		}
		break
	}
	switch {
	case ws.Exited():
		res.Status = ws.ExitStatus()
	case ws.Signaled():
		res.Status = 128 + int(ws.Signal())
		if !res.Checked {
			s.cfg.Log("lsan: pid %d was killed by %s: no leak check possible", proc.Pid, unix.SignalName(ws.Signal()))
		}
	}
	return res, nil
}

// waitStopped waits for pid to enter a stop (the SIGSTOP the tracer
// sent takes effect when the process returns to user space).
func waitStopped(pid int, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Microsecond) {
		if stopped(pid) {
			return true
		}
	}
	return false
}

// stopped reads whether pid is in a stop (state T in /proc/PID/stat).
func stopped(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	i := strings.LastIndexByte(string(data), ')')
	return i >= 0 && i+2 < len(data) && data[i+2] == 'T'
}

// checkAndReport runs a final check of a live process (SIGINT); its
// errors are reported, not fatal: the process must be allowed to finish
// either way.
func (s *Session) checkAndReport() bool {
	return s.finalCheck(func() error { return s.check(true) })
}

// checkAtExit is checkAndReport for a process stopped at _exit.
func (s *Session) checkAtExit() bool {
	return s.finalCheck(func() error {
		if s.cfg.Mode == report.ModeOutstanding {
			s.refreshMappings()
			return s.checkOutstanding(true)
		}
		return s.checkLeaksStopped()
	})
}

func (s *Session) finalCheck(check func() error) bool {
	if err := check(); err != nil {
		s.cfg.Log("lsan: %v", err)
		return false
	}
	s.checked = true
	return true
}
