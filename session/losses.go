package session

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lsan-project/lsan/bpf"
)

// Nothing is lost in silence: while lsan runs, a watcher reads the
// tracer's counters and says on stderr, as it happens, what was lost and
// what it means, and warns before the block map fills up. Each cause is
// repeated at most every lossRepeat while it keeps growing.
const (
	lossPoll   = time.Second
	lossRepeat = 10 * time.Second
	// fullWarnings are the fill levels of the block map warned about.
	fullWarn1, fullWarn2 = 0.80, 0.95
)

// lossWatcher remembers what it has said.
type lossWatcher struct {
	s        *Session
	capacity uint32
	last     bpf.Counters
	said     map[string]time.Time
	fill     float64 // highest fill level warned about
	stop     chan struct{}
	done     chan struct{}
}

// watchLosses starts the watcher; Close stops it.
func (s *Session) watchLosses() {
	capacity := s.tracer.MaxBlocks()
	if s.rec != nil {
		capacity = 0 // the recorder's live set has no bound to warn of
	}
	w := &lossWatcher{s: s, capacity: capacity, said: map[string]time.Time{},
		stop: make(chan struct{}), done: make(chan struct{})}
	s.losses = w
	go w.run()
}

func (w *lossWatcher) run() {
	defer close(w.done)
	t := time.NewTicker(lossPoll)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			if c, err := w.s.counters(); err == nil {
				w.look(c, time.Now())
			}
		}
	}
}

// close stops the watcher after a last look, so that a short run says
// what it lost too.
func (w *lossWatcher) close() {
	close(w.stop)
	<-w.done
	if c, err := w.s.counters(); err == nil {
		w.look(c, time.Now())
	}
}

// look compares the counters with the last reading and speaks.
func (w *lossWatcher) look(c bpf.Counters, now time.Time) {
	for _, l := range []struct {
		key       string
		now, prev uint64
		what      string
	}{
		{"allocs", c.AllocsDropped, w.last.AllocsDropped, fmt.Sprintf("allocation(s) not recorded: the block map is full (%d blocks; raise --max-blocks)", w.capacity)},
		{"calls", c.InflightDropped, w.last.InflightDropped, "allocator call(s) not followed (in-flight map full)"},
		{"frees", c.FreesMissed, w.last.FreesMissed, "free(s) not seen"},
		{"events", c.EventsDropped, w.last.EventsDropped, "fork or exit event(s) lost"},
		{"stacks", c.StacksDropped, w.last.StacksDropped, "allocation stack(s) not stored: the stack map is full (raise --max-stacks)"},
	} {
		if l.now > l.prev && now.Sub(w.said[l.key]) >= lossRepeat {
			w.said[l.key] = now
			consequence := "leak checks from now on rest on incomplete data"
			if l.key == "stacks" {
				consequence = "some reported stacks will be short"
			}
			w.s.cfg.Log("lsan: warning: %d %s since attach; %s", l.now, l.what, consequence)
		}
	}
	w.warnFill(c)
	w.last = c
}

// warnFill warns, before anything is dropped, that the block map fills.
func (w *lossWatcher) warnFill(c bpf.Counters) {
	if w.capacity == 0 || c.Allocs < c.Frees+c.FreesMissed {
		return
	}
	live := c.Allocs - c.Frees - c.FreesMissed
	fill := float64(live) / float64(w.capacity)
	for _, level := range []float64{fullWarn2, fullWarn1} {
		if fill >= level && w.fill < level {
			w.fill = level
			w.s.cfg.Log("lsan: warning: the block map is %.0f%% full (%d of %d blocks); beyond it allocations are dropped and checks become incomplete: restart with --max-blocks %d",
				level*100, live, w.capacity, nextCapacity(w.capacity))
			return
		}
	}
}

func nextCapacity(n uint32) uint32 {
	if n >= bpf.MaxMaxBlocks/2 {
		return bpf.MaxMaxBlocks
	}
	return n * 2
}

// sizeBlockMap sizes the block map to the target when the user did not:
// its anonymous memory bounds how many blocks it can hold.
func (s *Session) sizeBlockMap() {
	if s.cfg.Tracer.MaxBlocks != 0 {
		return
	}
	anon, ok := anonymousBytes(s.cfg.PID)
	if !ok {
		return
	}
	s.cfg.Tracer.MaxBlocks = bpf.SizeBlocksFor(anon)
	s.cfg.Log("lsan: block map sized for %d blocks (pid %d holds %d MiB of anonymous memory; --max-blocks to change)",
		s.cfg.Tracer.MaxBlocks, s.cfg.PID, anon>>20)
}

// anonymousBytes reads a process's anonymous memory (heap, anonymous
// mappings) from /proc/PID/smaps_rollup.
func anonymousBytes(pid int) (uint64, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Anonymous:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}
