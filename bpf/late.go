package bpf

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"maps"
	"sync"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/lsan-project/lsan/unwind"
)

// Late stacks. Between a dlopen (or an execve) and the moment the loader
// has read the new mappings, the probe's walk can meet code in no mapping
// it knows. It then sends where the walk began and a copy of the stack
// (struct late_stack); the tracer loads the new rows and walks that copy
// again here, with the same rules (unwind.Walker), and the block gets that
// stack. lsan run's processes stop themselves instead and never need it;
// an attached process is never stopped for rows.

// lateStackHeader is the size of struct late_stack before its bytes.
const lateStackHeader = 64

// lateKey names one allocation: the block at addr allocated at ts.
type lateKey struct {
	pid      int
	addr, ts uint64
}

// lateStacks holds the stacks walked again, until their blocks are freed.
type lateStacks struct {
	mu     sync.Mutex
	reader *ringbuf.Reader
	// ids names, for each allocation, the stack it got here; stacks holds
	// them by id (ids with lateBit set, never those of the stacks map).
	ids    map[lateKey]uint64
	stacks map[uint64][]uint64
	// walked counts the stacks walked again; fixed those the probe had cut
	// and that are complete now.
	walked, fixed uint64
	stop          chan struct{}
	done          sync.WaitGroup
}

// lateBit marks the ids of stacks walked again, so that they can be told
// from the stacks map's (whose ids are hashes too: a clash is a 2^-63
// chance, and would only swap one stack for another).
const lateBit = 1 << 63

// startLate reads the late_stacks ring: at once in the background, so
// that a module's rows are at hand before it is unloaded, and whenever the
// blocks are read (settleLate).
func (t *Tracer) startLate() error {
	rd, err := ringbuf.NewReader(t.objs.LateStacks)
	if err != nil {
		return fmt.Errorf("open late stack ring buffer: %w", err)
	}
	t.late = &lateStacks{reader: rd, ids: map[lateKey]uint64{}, stacks: map[uint64][]uint64{}, stop: make(chan struct{})}
	t.late.done.Add(1)
	go t.pollLate()
	return nil
}

// pollLate walks the late stacks as they come. The ring is polled (a load
// of its positions) rather than waited on, so that settleLate can drain it
// under the same lock without waking a blocked reader.
func (t *Tracer) pollLate() {
	defer t.late.done.Done()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-t.late.stop:
			return
		case <-tick.C:
			if t.late.reader.AvailableBytes() > 0 {
				t.settleLate()
			}
		}
	}
}

// settleLate walks every late stack in the ring now. Called before the
// blocks are read: the probe sent each before its allocation returned.
func (t *Tracer) settleLate() {
	l := t.late
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reader.SetDeadline(time.Now())
	for {
		rec, err := l.reader.Read()
		if err != nil { // os.ErrDeadlineExceeded: the ring is empty
			return
		}
		t.walkLate(rec.RawSample)
	}
}

// walkLate walks one late stack again (l.mu held).
func (t *Tracer) walkLate(raw []byte) {
	if len(raw) < lateStackHeader || t.unwinder == nil {
		return
	}
	word := func(off int) uint64 { return binary.NativeEndian.Uint64(raw[off:]) }
	pid := int(binary.NativeEndian.Uint32(raw[0:]))
	pages := uint64(binary.NativeEndian.Uint32(raw[4:]))
	key := lateKey{pid: pid, addr: word(8), ts: word(16)}
	probeStack, start := word(24), unwind.Regs{PC: word(32), SP: word(40), BP: word(48)}
	base, stack := word(56), raw[lateStackHeader:]
	stack = stack[:min(uint64(len(stack)), pages*4096)]
	// The rows of what the process mapped since (a no-op when the
	// mappings event already loaded them).
	_ = t.unwinder.addProcess(pid)
	w := t.unwinder.walker(pid)
	if w == nil {
		return
	}
	w.Word = func(addr uint64) (uint64, bool) {
		if addr < base || addr-base+8 > uint64(len(stack)) {
			return 0, false
		}
		return binary.NativeEndian.Uint64(stack[addr-base:]), true
	}
	pcs := w.Walk(start)
	l := t.late
	l.walked++
	var stored tracerStack
	if err := t.objs.Stacks.Lookup(probeStack, &stored); err == nil &&
		isCut(stored.Pcs[:min(int(stored.Len), len(stored.Pcs))]) && !isCut(pcs) {
		l.fixed++
	}
	id := lateID(pcs)
	l.ids[key] = id
	l.stacks[id] = pcs
}

// isCut tells a stack that ends with a marker frame.
func isCut(pcs []uint64) bool {
	if len(pcs) == 0 {
		return false
	}
	_, _, ok := Marker(pcs[len(pcs)-1])
	return ok
}

func lateID(pcs []uint64) uint64 {
	h := fnv.New64a()
	var b [8]byte
	for _, pc := range pcs {
		binary.NativeEndian.PutUint64(b[:], pc)
		h.Write(b[:])
	}
	return h.Sum64() | lateBit
}

// lateRead gives the blocks of one read of the map whose stacks were
// walked again those stacks (apply), and forgets, at the end of a whole
// read, those of blocks it did not find. It works on a copy of the ids
// (few): the blocks' consumer may ask for stacks meanwhile (lateStack),
// and stacks walked during the read, for blocks it may have passed, are
// kept for the next.
type lateRead struct {
	l    *lateStacks
	ids  map[lateKey]uint64
	seen map[lateKey]bool
}

// beginLate walks every late stack in the ring, then starts a read.
func (t *Tracer) beginLate() *lateRead {
	l := t.late
	if l == nil {
		return &lateRead{}
	}
	t.settleLate()
	l.mu.Lock()
	defer l.mu.Unlock()
	return &lateRead{l: l, ids: maps.Clone(l.ids), seen: map[lateKey]bool{}}
}

func (r *lateRead) apply(b *Block) {
	if len(r.ids) == 0 {
		return
	}
	key := lateKey{pid: b.PID, addr: b.Addr, ts: b.TimestampNS}
	if id, ok := r.ids[key]; ok {
		b.StackID = id
		r.seen[key] = true
	}
}

// end forgets the blocks the read did not find (freed), if it read the
// whole map (complete), and the stacks no block uses any more.
func (r *lateRead) end(complete bool) {
	l := r.l
	if l == nil || !complete {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for key := range r.ids {
		if !r.seen[key] {
			delete(l.ids, key)
		}
	}
	used := make(map[uint64]bool, len(l.ids))
	for _, id := range l.ids {
		used[id] = true
	}
	for id := range l.stacks {
		if !used[id] {
			delete(l.stacks, id)
		}
	}
}

// lateStack returns a stack walked again, by its id.
func (t *Tracer) lateStack(id uint64) ([]uint64, bool) {
	l := t.late
	if l == nil || id&lateBit == 0 {
		return nil, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	pcs, ok := l.stacks[id]
	return pcs, ok
}

// closeLate stops reading late stacks.
func (t *Tracer) closeLate() {
	l := t.late
	if l == nil {
		return
	}
	close(l.stop)
	l.done.Wait()
	l.reader.Close()
	t.late = nil
}

// walker describes pid's mappings as the loader last wrote them, for a
// walk in user space; nil when pid has none.
func (u *unwinder) walker(pid int) *unwind.Walker {
	u.mu.Lock()
	defer u.mu.Unlock()
	lm, ok := u.maps[pid]
	if !ok {
		return nil
	}
	w := &unwind.Walker{FramePointers: u.stats.Mode == UnwindAuto}
	for _, m := range lm.mappings {
		var tab *unwind.Table
		if m.Nrows > 0 {
			tab = u.tables[m.FirstRow]
		}
		w.Mappings = append(w.Mappings, unwind.Mapping{Start: m.Start, End: m.End, Bias: m.Bias, Table: tab})
	}
	return w
}
