package scanner

import (
	"runtime"
	"sync"
	"time"
)

// Every ptrace request for a tracee must come from the OS thread that
// seized it. All checks therefore run on one goroutine, locked to its OS
// thread for the life of the process: the tracer.
//
// Threads that died while traced are zombies only their tracer can reap;
// the tracer reaps them (see freezer.bury), later if they are not zombies
// yet when the check ends.
//
// A check can end with a thread seized but not stopped: a thread in
// uninterruptible sleep (a parent in vfork, a read from a hung NFS) does
// not stop within the freeze timeout, and a tracee can only be detached
// once stopped. Such a thread stops when it wakes — and would then stay
// stopped. The tracer keeps these leftovers and detaches each as soon as
// it stops; a new check of the same process adopts them instead. (Letting
// the locked thread exit would detach them too, but Go does not end a
// locked main thread: it parks it, and the tracees with it.)

// leftoverPoll is how often the tracer looks at leftover threads.
const leftoverPoll = 20 * time.Millisecond

type checkRequest struct {
	pid      int
	snapshot SnapshotFunc
	opts     Options
	reply    chan checkOutcome
}

type checkOutcome struct {
	res *Result
	err error
}

var tracer struct {
	once     sync.Once
	requests chan checkRequest
}

// runOnTracer runs a check on the tracer goroutine, starting it once.
func runOnTracer(req checkRequest) checkOutcome {
	tracer.once.Do(func() {
		tracer.requests = make(chan checkRequest)
		go tracerLoop(tracer.requests)
	})
	req.reply = make(chan checkOutcome, 1)
	tracer.requests <- req
	return <-req.reply
}

// tracerLoop serves checks and detaches leftover threads as they stop.
func tracerLoop(requests <-chan checkRequest) {
	runtime.LockOSThread()          // never unlocked: see above
	leftovers := map[int]*freezer{} // by pid, only freezers with seized threads
	for {
		var tick <-chan time.Time
		if len(leftovers) > 0 {
			tick = time.After(leftoverPoll)
		}
		select {
		case req := <-requests:
			f := leftovers[req.pid]
			delete(leftovers, req.pid)
			if f == nil {
				f = newFreezer(req.pid, req.opts.FreezeTimeout)
			} else {
				f.adopt(req.opts.FreezeTimeout)
			}
			res, err := runCheck(f, req.snapshot, req.opts)
			if f.holdsAny() {
				leftovers[req.pid] = f
			}
			req.reply <- checkOutcome{res, err}
		case <-tick:
			for pid, f := range leftovers {
				_ = f.thaw(0)
				if !f.holdsAny() {
					delete(leftovers, pid)
				}
			}
		}
	}
}
