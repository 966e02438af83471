package session

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/lsan-project/lsan/bpf"
	"github.com/lsan-project/lsan/symbolize"
	"golang.org/x/sys/unix"
)

// RunResult is how `lsan run` ended.
type RunResult struct {
	// Status is the command's own exit status (128+N when signal N
	// killed it), what lsan exits with when no leak was found.
	Status int
	// Checked says whether a leak check ran; Leaks whether it found any.
	Checked, Leaks bool
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
	s := &Session{cfg: cfg, syms: symbolize.New(cfg.Symbolize), exited: make(chan struct{})}
	proc, err := Launch(argv[0], argv, func(pid int) error { return s.attachChild(pid) })
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
	s.cfg.Tracer.StopAtExit = true
	t, err := bpf.Attach(s.cfg.Tracer)
	if err != nil {
		return err
	}
	s.tracer = t
	s.logProbes()
	return nil
}

// superviseChild waits for the child's stops and exit, and for signals.
func (s *Session) superviseChild(proc *os.Process, sigs <-chan os.Signal) (RunResult, error) {
	var res RunResult
	events := waitEvents(proc.Pid)
	handledStops := uint64(0)
	for {
		select {
		case ev := <-events:
			if ev.err != nil {
				return res, fmt.Errorf("wait for pid %d: %w", proc.Pid, ev.err)
			}
			ws := ev.status
			switch {
			case ws.Exited():
				res.Status = ws.ExitStatus()
				return res, nil
			case ws.Signaled():
				res.Status = 128 + int(ws.Signal())
				if !res.Checked {
					s.cfg.Log("lsan: pid %d was killed by %s: no leak check possible", proc.Pid, unix.SignalName(ws.Signal()))
				}
				return res, nil
			case ws.Stopped() && ws.StopSignal() == unix.SIGSTOP:
				if s.isExitStop(&handledStops) {
					s.checkAtExit(&res)
					proc.Signal(syscall.SIGCONT)
				}
			}
		case sig := <-sigs:
			if sig == os.Interrupt && !res.Checked {
				s.cfg.Log("lsan: interrupted: checking pid %d before passing the signal on", proc.Pid)
				s.checkAtExit(&res)
			}
			proc.Signal(sig)
		}
	}
}

// isExitStop tells a stop at _exit (the probe counts them) from a
// SIGSTOP someone else sent, which lsan leaves alone.
func (s *Session) isExitStop(handled *uint64) bool {
	c, err := s.tracer.Counters()
	if err != nil || c.ExitStops <= *handled {
		return false
	}
	*handled = c.ExitStops
	return true
}

// checkAtExit runs the final check; its errors are reported, not fatal:
// the command must be allowed to finish either way.
func (s *Session) checkAtExit(res *RunResult) {
	s.refreshMappings()
	if err := s.check(true); err != nil {
		s.cfg.Log("lsan: %v", err)
		return
	}
	res.Checked, res.Leaks = true, s.lastLeak
}

type waitEvent struct {
	status unix.WaitStatus
	err    error
}

// waitEvents reports the child's stops and its end on a channel.
func waitEvents(pid int) <-chan waitEvent {
	ch := make(chan waitEvent)
	go func() {
		for {
			var ws unix.WaitStatus
			_, err := unix.Wait4(pid, &ws, unix.WUNTRACED, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			ch <- waitEvent{ws, err}
			if err != nil || ws.Exited() || ws.Signaled() {
				return
			}
		}
	}()
	return ch
}
