package session

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

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
	s := &Session{cfg: cfg, syms: symbolize.New(cfg.Symbolize)}
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

// superviseChild watches the child until it exits. It never waits on
// the child while it lives: during a check the scanner traces the child,
// and a wait from here could take the scanner's ptrace stops. The stop at
// _exit is seen through the probe's counter and the child's state; the
// exit through a pidfd; only then is the child reaped.
func (s *Session) superviseChild(proc *os.Process, sigs <-chan os.Signal) (RunResult, error) {
	var res RunResult
	exited, err := exitNotifier(proc.Pid)
	if err != nil {
		return res, err
	}
	s.exited = exited
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	handledStops := uint64(0)
	for {
		select {
		case <-exited:
			return s.reap(proc, res)
		case <-poll.C:
			if s.isExitStop(proc.Pid, &handledStops) {
				s.checkAtExit(&res)
				proc.Signal(syscall.SIGCONT)
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

// isExitStop tells a stop at _exit (the probe counts them) from a
// SIGSTOP someone else sent, which lsan leaves alone.
func (s *Session) isExitStop(pid int, handled *uint64) bool {
	c, err := s.tracer.Counters()
	if err != nil || c.ExitStops <= *handled || !stopped(pid) {
		return false
	}
	*handled = c.ExitStops
	return true
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
