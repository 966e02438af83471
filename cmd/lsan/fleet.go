package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lsan-project/lsan/internal/target"
	"github.com/lsan-project/lsan/session"
)

// parsePIDs reads -p: one process ID or a comma-separated list.
func parsePIDs(s string) ([]int, error) {
	var pids []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("-p %s: %q is not a process ID", s, f)
		}
		if pid <= 0 {
			return nil, fmt.Errorf("-p %s: a process ID is a positive number", f)
		}
		if !slices.Contains(pids, pid) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// pollComm is how often --comm looks for new processes of that name.
const pollComm = 300 * time.Millisecond

// fleet checks many processes: -p PID1,PID2,... and --comm NAME. A
// session owns a tracer for each set of probe sites; a process whose
// allocator functions are the same code as an owner's (the same program,
// or another using the same libc) is a view of it (session.Adopt), its
// probe sites planned once. Checks run one process after the other.
type fleet struct {
	cfg  session.Config
	need target.Need
	comm string
	// owners are the sessions that own a tracer, in attach order; procs
	// every traced process's session (owners included) by pid.
	owners []*session.Session
	owner  map[int]*session.Session // the owner of each adopted process
	procs  map[int]*session.Session
	// leaks and incomplete: of the last check of each process.
	leaks, incomplete map[int]bool
}

func newFleet(cfg session.Config, need target.Need, comm string) *fleet {
	return &fleet{cfg: cfg, need: need, comm: comm,
		owner: map[int]*session.Session{},
		procs: map[int]*session.Session{}, leaks: map[int]bool{}, incomplete: map[int]bool{}}
}

// attach starts tracing pid: with a tracer whose probe sites are its own
// if there is one, else with a new one.
func (f *fleet) attach(pid int) error {
	if err := target.Check(pid, f.need); err != nil {
		return err
	}
	if o := f.sharingOwner(pid); o != nil {
		v, err := o.Adopt(pid)
		if err != nil {
			return err
		}
		f.procs[pid], f.owner[pid] = v, o
		f.cfg.Log("lsan: attached to pid %d (sharing the probes of pid %d)", pid, o.PID())
		return nil
	}
	cfg := f.cfg
	cfg.PID = pid
	s, err := session.Attach(cfg)
	if err != nil {
		return err
	}
	f.owners = append(f.owners, s)
	f.procs[pid] = s
	return nil
}

// sharingOwner finds a tracer whose probe sites are pid's.
func (f *fleet) sharingOwner(pid int) *session.Session {
	for _, o := range f.owners {
		if o.SharesProbes(pid) {
			return o
		}
	}
	return nil
}

// scanComm attaches every process named f.comm not traced yet; one that
// cannot be traced is said so once and skipped.
func (f *fleet) scanComm(skipped map[int]bool) {
	for _, pid := range processesNamed(f.comm) {
		if f.procs[pid] != nil || skipped[pid] || !runnable(pid) {
			continue
		}
		if err := f.attach(pid); err != nil {
			skipped[pid] = true
			f.cfg.Log("lsan: not tracing pid %d (%s): %v", pid, f.comm, err)
		}
	}
}

// runnable leaves out what is not worth a line: a zombie (a process that
// just exited, or the intermediate of a fork snapshot), and a process
// lsan itself traces (the copy a fork snapshot scans).
func runnable(pid int) bool {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "State:"); ok && strings.HasPrefix(strings.TrimSpace(v), "Z") {
			return false
		}
		if v, ok := strings.CutPrefix(line, "TracerPid:"); ok && strings.TrimSpace(v) == strconv.Itoa(os.Getpid()) {
			return false
		}
	}
	return true
}

// processesNamed lists the processes whose command name (/proc/PID/comm,
// 15 characters at most) is name, lsan itself left out.
func processesNamed(name string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err == nil && strings.TrimSuffix(string(comm), "\n") == name {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}

// checkAll checks every live process, in pid order.
func (f *fleet) checkAll(final bool) {
	for _, pid := range slices.Sorted(mapsKeys(f.procs)) {
		s := f.procs[pid]
		if s.Exited() {
			continue
		}
		err := s.CheckNow(final)
		switch {
		case errors.Is(err, session.ErrTargetExited):
		case err != nil:
			f.cfg.Log("lsan: pid %d: %v", pid, err)
		default:
			f.leaks[pid], f.incomplete[pid] = s.LastLeak(), s.Incomplete()
		}
	}
}

// dropExited forgets the processes that exited, saying so.
func (f *fleet) dropExited() {
	for pid, s := range f.procs {
		if !s.Exited() {
			continue
		}
		f.cfg.Log("lsan: pid %d exited", pid)
		delete(f.procs, pid)
		if o := f.owner[pid]; o != nil {
			o.Forget(s)
			delete(f.owner, pid)
		}
	}
}

// close detaches everything: the views first, then the owners.
func (f *fleet) close() error {
	for pid, s := range f.procs {
		if o := f.owner[pid]; o != nil {
			o.Forget(s)
		}
	}
	var errs []error
	for _, o := range f.owners {
		errs = append(errs, o.Close())
	}
	return errors.Join(errs...)
}

// run checks every interval until count rounds, an interrupt (a final
// round), or, without --comm, every process has exited.
func (f *fleet) run(ctx context.Context) error {
	ticker := time.NewTicker(f.cfg.Interval)
	defer ticker.Stop()
	var poll <-chan time.Time
	skipped := map[int]bool{}
	if f.comm != "" {
		t := time.NewTicker(pollComm)
		defer t.Stop()
		poll = t.C
	}
	for round := 0; f.cfg.Count == 0 || round < f.cfg.Count; {
		select {
		case <-ticker.C:
			round++
			f.checkAll(round == f.cfg.Count)
		case <-poll:
			f.scanComm(skipped)
		case <-ctx.Done():
			if !f.cfg.NoFinalCheck {
				f.cfg.Log("lsan: interrupted, final check")
				f.checkAll(true)
			}
			return nil
		}
		f.dropExited()
		if f.comm == "" && len(f.procs) == 0 {
			return nil
		}
	}
	return nil
}

// verdict is lsan's exit for the fleet: leaks in the last check of any
// process, or a check on incomplete data.
func (f *fleet) verdict(exitcode int) error {
	for _, inc := range f.incomplete {
		if inc {
			return incompleteData{}
		}
	}
	for _, leak := range f.leaks {
		if leak {
			return leaksFound{exitcode}
		}
	}
	return nil
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// checkFleet attaches to pids and to the processes named comm and checks
// them until done.
func checkFleet(cfg session.Config, need target.Need, pids []int, comm string, exitcode int) (err error) {
	ctx, abort, stop := interrupts()
	defer stop()
	cfg.Abort = abort
	f := newFleet(cfg, need, comm)
	defer func() {
		if cerr := f.close(); cerr != nil && err == nil {
			err = fmt.Errorf("detach: %w", cerr)
		}
	}()
	for _, pid := range pids {
		if err := f.attach(pid); err != nil {
			return err
		}
	}
	if comm != "" {
		f.scanComm(map[int]bool{})
		if len(f.procs) == 0 {
			cfg.Log("lsan: no process named %q yet: waiting for one (Ctrl-C to stop)", comm)
		}
	}
	announceFirstCheck(cfg.Interval, time.Now())
	if err := f.run(ctx); err != nil {
		return err
	}
	return f.verdict(exitcode)
}
