package scanner

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A fork snapshot costs the system one page for every page the target
// writes while the copy exists: the target gets a new page, the copy keeps
// the old one, which from then on is the copy's alone. So the copy's
// private memory, grown since the fork, is what the snapshot has cost so
// far. copyWatch reads it while the copy is scanned and stops the scan
// when it passes a bound; the check is then done again with the target
// stopped (runCheck), and the report says why.

// copyWatchEvery is how often the copy's memory is read: a page copy
// takes about a microsecond, so at most ~50k pages (200 MiB) can be copied
// between two readings.
const copyWatchEvery = 50 * time.Millisecond

// errCopyGrew stops a fork check whose copy grew past its bound.
type errCopyGrew struct{ bound uint64 }

func (e *errCopyGrew) Error() string {
	// The same words each time, so that lsan says it once (the growth
	// seen varies from check to check).
	return fmt.Sprintf("the target rewrote more than %d MiB of its memory while its copy was scanned, each page of it copied (--fork-copy-limit)",
		e.bound>>20)
}

type copyWatch struct {
	cancel chan struct{} // closed when the bound is passed or outer is
	stop   chan struct{}
	done   sync.WaitGroup
	bound  uint64
	trip   atomic.Bool
}

// watchCopy follows the copy (pid) against bound (bytes). Its cancel
// channel closes when the bound is passed, or when outer does (the
// check's own Options.Cancel).
func watchCopy(pid int, bound uint64, outer <-chan struct{}) *copyWatch {
	w := &copyWatch{cancel: make(chan struct{}), stop: make(chan struct{}), bound: bound}
	// The copy's memory at the fork; where it cannot be read yet, the
	// first reading that succeeds stands for it (an unreadable copy is
	// the scan's to find).
	base, err := privateBytes(pid)
	haveBase := err == nil
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		tick := time.NewTicker(copyWatchEvery)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-outer:
				close(w.cancel)
				return
			case <-tick.C:
			}
			now, err := privateBytes(pid)
			if err != nil {
				continue
			}
			if !haveBase {
				base, haveBase = now, true
			}
			if now <= base {
				continue
			}
			if now-base > bound {
				w.trip.Store(true)
				close(w.cancel)
				return
			}
		}
	}()
	return w
}

// end stops the watch; it returns the error that stopped the scan, if
// the bound did.
func (w *copyWatch) end() error {
	close(w.stop)
	w.done.Wait()
	if w.trip.Load() {
		return &errCopyGrew{bound: w.bound}
	}
	return nil
}

// privateBytes is a process's private memory (smaps_rollup's
// Private_Clean + Private_Dirty).
func privateBytes(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("%s/%d/smaps_rollup", procRoot, pid))
	if err != nil {
		return 0, err
	}
	clean, err1 := kbField(data, "Private_Clean")
	dirty, err2 := kbField(data, "Private_Dirty")
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("smaps_rollup of pid %d: no private memory counts", pid)
	}
	return (clean + dirty) << 10, nil
}

// kbField reads a "Key:   123 kB" line (/proc's status, meminfo,
// smaps_rollup).
func kbField(data []byte, key string) (uint64, error) {
	v := statusField(data, key)
	if v == "" {
		return 0, fmt.Errorf("no %s", key)
	}
	return strconv.ParseUint(strings.TrimSuffix(v, " kB"), 10, 64)
}

// copyBound is how much a copy of pid may cost when Options.CopyLimit
// does not say: half the memory the system has available, and under a
// memory cgroup limit, half the room left in it, so that a check never
// takes what the target or its neighbours are about to need.
func copyBound(pid int) uint64 {
	bound := uint64(1) << 62
	if data, err := os.ReadFile(procRoot + "/meminfo"); err == nil {
		if kb, err := kbField(data, "MemAvailable"); err == nil {
			bound = kb << 10 / 2
		}
	}
	if room, ok := cgroupRoom(pid); ok {
		bound = min(bound, room/2)
	}
	return bound
}

// cgroupRoom is what is left under pid's cgroup v2 memory.max.
func cgroupRoom(pid int) (uint64, bool) {
	data, err := os.ReadFile(fmt.Sprintf("%s/%d/cgroup", procRoot, pid))
	if err != nil {
		return 0, false
	}
	path, ok := strings.CutPrefix(strings.TrimSpace(string(data)), "0::")
	if !ok {
		return 0, false
	}
	dir := filepath.Join("/sys/fs/cgroup", path)
	limit, errMax := os.ReadFile(filepath.Join(dir, "memory.max"))
	current, errCur := os.ReadFile(filepath.Join(dir, "memory.current"))
	if errMax != nil || errCur != nil || strings.TrimSpace(string(limit)) == "max" {
		return 0, false
	}
	max, err1 := strconv.ParseUint(strings.TrimSpace(string(limit)), 10, 64)
	cur, err2 := strconv.ParseUint(strings.TrimSpace(string(current)), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return max - min(cur, max), true
}
