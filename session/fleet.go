package session

import "fmt"

// Many processes (lsan -p PID1,PID2, --comm NAME): cmd/lsan's fleet keeps
// one Session that owns a tracer per set of probe sites, and a view of it
// (Adopt) for every other process whose allocator functions are the same
// code (the same program, or another one using the same libc): the probe
// sites are planned once, each process is probed with the kernel's
// per-process filter, and each gets its own checks and reports.

// Adopt traces pid, another process running the program of s's target,
// with s's tracer, and returns its view: a Session of its own for checks
// and reports, closed with s.
func (s *Session) Adopt(pid int) (*Session, error) {
	exited, err := exitNotifier(pid)
	if err != nil {
		return nil, err
	}
	if err := s.tracer.Track(pid); err != nil {
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	v := s.viewOf(pid, exited)
	v.refreshMappings()
	return v, nil
}

// SharesProbes tells whether pid can be adopted: it binds the allocator
// functions to the same code as s's target.
func (s *Session) SharesProbes(pid int) bool { return s.tracer.SharesProbes(pid) }

// Forget stops tracing an adopted process (it exited, or lsan is done).
func (s *Session) Forget(v *Session) { s.tracer.RemoveProcess(v.cfg.PID) }

// CheckNow runs one check of the session's process and reports it; final
// marks the last one. ErrTargetExited when the process is gone.
func (s *Session) CheckNow(final bool) error { return s.check(final) }

// LastLeak says whether the last check found unsuppressed leaks.
func (s *Session) LastLeak() bool { return s.lastLeak }

// Exited says whether the session's process has exited.
func (s *Session) Exited() bool { return s.targetExited() }

// PID is the session's process.
func (s *Session) PID() int { return s.cfg.PID }
