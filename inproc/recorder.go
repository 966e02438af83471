// Package inproc is lsan run's in-process allocation recorder: a small
// preloaded library (shim/) interposes the allocator inside the command
// lsan starts and writes every block's birth and death into memory shared
// with lsan; the Recorder drains it into the live set the checks read.
// It serves the blocks, stacks and counters the BPF tracer serves in
// uprobe mode, at a fraction of the cost per call: no kernel trap.
package inproc

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/lsan-project/lsan/bpf"
	"github.com/lsan-project/lsan/internal/procmaps"
	"github.com/lsan-project/lsan/unwind"
)

// Options configure a Recorder.
type Options struct {
	// Unwind is how the shim walks stacks (--unwind).
	Unwind bpf.UnwindMode
	// Lifecycle: the library announces the process's exit (Exits, then
	// ExitDone) and its new code (RowsRequested is called, then the
	// library goes on): no BPF program follows the process.
	Lifecycle bool
	// RowsRequested loads the unwind rows of pid's mappings (Lifecycle).
	RowsRequested func(pid int)
}

// Counters are the recorder's event counts.
type Counters struct {
	Allocs, Frees uint64
	// Lost: records the shim could not write (it took lsan for dead and
	// stopped recording): blocks may look leaked or live that are not.
	Lost uint64
	// Disabled: the shim stopped recording.
	Disabled bool
	// StacksDropped: stacks not stored (table full); their blocks are
	// reported with the allocator frame only.
	StacksDropped uint64
	// Inflight: records a stopped thread had begun but not finished at
	// the last read: a block just allocated, not yet seen.
	Inflight uint64
	// Waits: times a thread found its ring full and waited for lsan.
	Waits uint64
}

type liveBlock struct {
	// sizeFn holds the size in its low 56 bits (no allocation can be
	// larger) and the function in its top 8: 24 bytes a block, not 32.
	sizeFn uint64
	// ms is when it was allocated, in milliseconds from the recorder's
	// start, to a drain pass (rec.time); gen orders it among its
	// address's events.
	ms, gen uint32
	stack   uint32
	// The allocating thread is not kept: nothing lsan reports uses it
	// (Block.TID is 0), and a live set lent to a check would keep it for
	// nothing (Lend).
}

func newLiveBlock(size uint64, ms, gen, stack uint32, fn uint8) liveBlock {
	return liveBlock{sizeFn: min(size, maxBlockSize) | uint64(fn)<<56, ms: ms, gen: gen, stack: stack}
}

const maxBlockSize = 1<<56 - 1

func (b liveBlock) size() uint64 { return b.sizeFn & maxBlockSize }
func (b liveBlock) fn() uint8    { return uint8(b.sizeFn >> 56) }

// genBefore tells whether generation a was taken before b (the counters
// wrap; two events of one address in flight are never 2^31 apart).
func genBefore(a, b uint32) bool { return int32(a-b) < 0 }

// tomb is a free seen before the allocation it ends (another thread's
// ring drained first): its generation, and the drain pass that read it.
type tomb struct{ gen, pass uint32 }

// process is what the recorder knows of one process.
type process struct {
	live *blockTable
	// image is the number of its newest program image (rec.image):
	// records of older ones are the images' before an execve. closed:
	// that image has no recorder (Blocks), its records are dropped too.
	image           uint32
	started, closed bool
	tombs           map[uint64]tomb
	// lent: the live set is lent to a check (Lend), and live holds what
	// the records read since made.
	lent *Lent
}

// Recorder drains the shared memory of the processes one lsan run
// started.
type Recorder struct {
	opts Options
	file *os.File // the memfd
	mem  []byte

	mu       sync.Mutex
	start    uint64 // CLOCK_MONOTONIC at New: rec.time counts from it
	pass     uint32 // drain passes made (tomb.pass)
	procs    map[int]*process
	consumed [rings]uint64
	reused   [rings]uint64 // ring.reused as last read
	allocs   uint64
	frees    uint64
	inflight uint64
	// funcIndex maps the shim's fn to the tracer's table (Block.Fn).
	funcIndex []uint16
	funcAddrs map[int][]uint64 // by pid: the shim's functions' addresses
	// last is the process of the last record (most come from one).
	last    *process
	lastPID int
	library string

	rowsMu  sync.Mutex
	procMap map[int]int // pid -> proc slot

	// exits receives the pids that announced their exit (Lifecycle);
	// rowsWanted the pids whose new code needs rows, answered after the
	// drain pass that read them.
	exits      chan int
	rowsWanted map[int]bool
	urgentSeen uint32

	stop chan struct{}
	done sync.WaitGroup
}

// New creates the shared memory and starts draining it. It is a memfd:
// nothing is left behind, whichever way lsan ends.
func New(opts Options) (*Recorder, error) {
	fd, err := unix.MemfdCreate("lsan-inproc", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("in-process recorder: shared memory: %w", err)
	}
	f := os.NewFile(uintptr(fd), "lsan-inproc")
	r := &Recorder{opts: opts, file: f, procs: map[int]*process{}, funcAddrs: map[int][]uint64{},
		procMap: map[int]int{}, stop: make(chan struct{}),
		exits: make(chan int, 64), rowsWanted: map[int]bool{}, start: monotonicNow()}
	if err := f.Truncate(sharedSize); err != nil {
		f.Close()
		return nil, fmt.Errorf("in-process recorder: shared memory: %w", err)
	}
	r.mem, err = unix.Mmap(fd, 0, sharedSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("in-process recorder: map shared memory: %w", err)
	}
	r.writeHeader()
	r.done.Add(1)
	go r.drainLoop()
	return r, nil
}

func (r *Recorder) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&r.mem[off])) }
func (r *Recorder) u64(off int) *uint64 { return (*uint64)(unsafe.Pointer(&r.mem[off])) }

func (r *Recorder) writeHeader() {
	*r.u32(hVersion) = version
	*r.u32(hRings) = rings
	*r.u32(hRingSlots) = ringSlots
	*r.u32(hRecSize) = recSize
	*r.u32(hStackSlots) = stackSlots
	*r.u32(hMaxDepth) = maxDepth
	*r.u64(hRingsOff) = ringsOff
	*r.u64(hStacksOff) = stacksOff
	*r.u64(hProcsOff) = procsOff
	*r.u64(hRowsOff) = rowsOff
	*r.u32(hMaxRows) = maxRows
	*r.u32(hProcSlots) = procSlots
	*r.u32(hUnwindMode) = unwindMode(r.opts.Unwind)
	if r.opts.Lifecycle {
		*r.u32(hLifecycle) = 1
	}
	*r.u64(hDeadAfter) = uint64(deadAfter)
	r.beat()
	// The magic last: the shim trusts nothing before it.
	atomic.StoreUint64(r.u64(hMagic), magic)
}

// deadAfter: a thread waiting (for room in its ring, for its exit check,
// for rows) this long after lsan last drained takes lsan for dead and goes
// on (recording stops), rather than wait forever.
const deadAfter = 2 * time.Second

// unwindMode is the shim's walk for --unwind (bpf/unwind.h's values).
func unwindMode(m bpf.UnwindMode) uint32 {
	switch m {
	case bpf.UnwindFP:
		return 0
	case bpf.UnwindCFI:
		return 2
	}
	return 1
}

// childFD is the descriptor the command gets the shared memory on
// (exec.Cmd.ExtraFiles[0]).
const childFD = 3

// Env is what the command's environment needs for the shim at library:
// the descriptor it inherits the shared memory on, and, for a program
// that closed it before an execve, where to open it again.
func (r *Recorder) Env(library string) []string {
	r.library = library
	preload := library
	if old := os.Getenv("LD_PRELOAD"); old != "" {
		preload += ":" + old
	}
	shm := fmt.Sprintf("%d:/proc/%d/fd/%d", childFD, os.Getpid(), r.file.Fd())
	return []string{"LD_PRELOAD=" + preload, "LSAN_INPROC_SHM=" + shm}
}

// File is the shared memory, for the command's descriptor childFD.
func (r *Recorder) File() *os.File { return r.file }

// Loaded tells whether the shim is mapped in pid (it is not in a static
// binary, a setuid one, or when something cleared LD_PRELOAD).
func (r *Recorder) Loaded(pid int) bool {
	text, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	return err == nil && bytes.Contains(text, []byte(filepath.Base(r.library)))
}

// SetFuncs maps the shim's functions to table (Block.Fn indexes it).
func (r *Recorder) SetFuncs(table []bpf.AllocatorFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.funcIndex = make([]uint16, len(fnNames))
	for i, name := range fnNames {
		r.funcIndex[i] = ^uint16(0)
		for j, f := range table {
			if f.Name == name {
				r.funcIndex[i] = uint16(j)
				break
			}
		}
	}
}

// Unknown lists the allocator functions pid has that the shim does not
// see called: functions it does not interpose, and those the program's
// executable defines itself (the executable comes before the preloaded
// shim in the dynamic linker's search, so its own calls bypass it).
func Unknown(pid int, alloc *bpf.Allocator, table []bpf.AllocatorFunc) []string {
	known := map[string]bool{}
	for _, n := range fnNames {
		known[n] = true
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	var out []string
	for _, f := range table {
		if f.Family == "ld.so" || f.Name == "_exit" || f.Name == "_Exit" {
			continue
		}
		b, ok := alloc.Bindings[f.Name]
		if !ok {
			continue
		}
		if known[f.Name] && b.Object.Path != exe {
			continue
		}
		// Another name of an interposed function (tcmalloc's tc_malloc
		// is its malloc) is reached only by calls to that name.
		out = append(out, f.Name+" in "+filepath.Base(b.Object.Path))
	}
	return out
}

// Close stops draining, unmaps and removes the shared memory.
func (r *Recorder) Close() error {
	select {
	case <-r.stop:
		return nil
	default:
	}
	close(r.stop)
	r.done.Wait()
	r.mu.Lock()
	for pid := range r.procs {
		r.forgetLocked(pid)
	}
	r.mu.Unlock()
	r.file.Close()
	return unix.Munmap(r.mem)
}

// drainLoop keeps the rings from filling while the command runs. It
// reads a ring once it holds a batch, not record by record right behind
// the thread writing it: each cache line read while the thread writes the
// next record on it would travel between the CPUs twice. What is left
// below a batch is read every flushEvery, and by every check (Blocks).
func (r *Recorder) drainLoop() {
	defer r.done.Done()
	const (
		batch      = ringSlots / 16
		flushEvery = 20 * time.Millisecond
		nap        = 100 * time.Microsecond
	)
	lastFlush := time.Now()
	for {
		select {
		case <-r.stop:
			return
		default:
		}
		min := batch
		if urgent := atomic.LoadUint32(r.u32(hUrgent)); urgent != r.urgentSeen || time.Since(lastFlush) > flushEvery {
			// An exit or new code waits for lsan: everything now.
			min, lastFlush, r.urgentSeen = 1, time.Now(), urgent
		}
		r.mu.Lock()
		n, _ := r.drainAtLeast(min)
		wanted := r.rowsWanted
		r.rowsWanted = map[int]bool{}
		r.mu.Unlock()
		r.answerRows(wanted)
		r.beat()
		if n == 0 {
			time.Sleep(nap)
		}
	}
}

// beat tells the threads lsan is alive, and the time records carry.
func (r *Recorder) beat() {
	now := monotonicNow()
	atomic.StoreUint64(r.u64(hEpochMS), (now-r.start)/uint64(time.Millisecond))
	atomic.StoreUint64(r.u64(hHeartbeat), now)
}

// drain applies every published record.
func (r *Recorder) drain() (n int, complete bool) { return r.drainAtLeast(1) }

// drainAtLeast applies the published records of every ring that holds
// at least min. complete says whether every ring was read to the position
// it had reserved when the pass began. An allocation's slot is reserved
// before it takes its generation, and a free's after: the allocation a
// tomb could cancel was reserved before the tomb was read, so once a
// complete pass that began later is done, the tomb has nothing left to
// cancel.
func (r *Recorder) drainAtLeast(min int) (n int, complete bool) {
	r.pass++
	pass := r.pass
	complete = true
	for i := 0; i < rings; i++ {
		base := ringsOff + i*ringSize
		reserved := atomic.LoadUint64(r.u64(base + ringReserve))
		r.countReused(i, base)
		pos := r.consumed[i]
		if reserved-pos < uint64(min) {
			complete = complete && reserved == pos
			continue
		}
		for pos < reserved {
			rec := r.record(base, pos)
			if atomic.LoadUint32(&rec.seq) != uint32(pos+1) {
				complete = false
				break
			}
			if pos+1 == reserved && !claim(rec) {
				complete = false // its thread is writing it again
				break
			}
			if pos+1 < reserved && r.cancelled(rec, r.record(base, pos+1), pos+2) {
				pos += 2
				n += 2
				continue
			}
			r.apply(rec)
			pos++
			n++
		}
		if pos != r.consumed[i] {
			r.consumed[i] = pos
			atomic.StoreUint64(r.u64(base+ringConsumed), pos)
		}
	}
	if complete {
		r.dropTombs(pass)
	}
	return n, complete
}

// countReused counts the pairs ring i's thread wrote over (a retracted
// record whose slot its next allocation took: shim/layout.h), which no
// drain reads.
func (r *Recorder) countReused(i, base int) {
	reused := atomic.LoadUint64(r.u64(base + ringReused))
	r.allocs += reused - r.reused[i]
	r.frees += reused - r.reused[i]
	r.reused[i] = reused
}

func newProcess() *process {
	return &process{live: newBlockTable()}
}

func (r *Recorder) proc(pid int) *process {
	if r.last != nil && r.lastPID == pid {
		return r.last
	}
	p := r.procs[pid]
	if p == nil {
		p = newProcess()
		r.procs[pid] = p
	}
	r.last, r.lastPID = p, pid
	return p
}

// rec is a record as it lies in the ring (struct rec in shim/layout.h;
// TestLayout checks the offsets).
type rec struct {
	seq      uint32
	kind, fn uint8
	claimed  uint16
	pid, tid uint32
	stack    uint32
	gen      uint32
	addr     uint64
	size     uint64
	time     uint32
	image    uint32
}

// claim marks a ring's last record as read where its thread could still
// change it (shim/layout.h, REC_CLAIMED): an allocation it may retract, a
// retracted one it may write again. Whichever side comes first wins. It
// returns false when the thread is writing the slot again (recWriting):
// not published yet.
func claim(rec *rec) bool {
	w := (*uint32)(unsafe.Pointer(&rec.kind))
	for {
		old := atomic.LoadUint32(w)
		switch {
		case uint8(old) == recWriting:
			return false
		case uint8(old) != recAlloc && uint8(old) != recRetracted, old>>16 != 0:
			return true
		case atomic.CompareAndSwapUint32(w, old, old|recClaimed<<16):
			return true
		}
	}
}

// record returns the record at position pos of the ring at base.
func (r *Recorder) record(base int, pos uint64) *rec {
	return (*rec)(unsafe.Pointer(&r.mem[base+ringHeader+int(pos%ringSlots)*recSize]))
}

// cancelled applies an allocation and the free of the same block right
// after it in the same ring (a temporary buffer: the commonest pair) at
// once, as nothing, where nothing else is known of the address: the
// drain must keep up with a thread making a pair every 35 ns. nextSeq is
// the sequence number next carries once published.
func (r *Recorder) cancelled(a, next *rec, nextSeq uint64) bool {
	if a.kind != recAlloc || atomic.LoadUint32(&next.seq) != uint32(nextSeq) || next.kind != recFree ||
		next.addr != a.addr || next.pid != a.pid || next.image != a.image || !genBefore(a.gen, next.gen) {
		return false
	}
	p := r.proc(int(a.pid))
	if !p.current(a.image) || p.lent != nil {
		return false
	}
	if _, ok := p.tombs[a.addr]; ok {
		return false
	}
	if _, ok := p.live.get(a.addr); ok {
		return false
	}
	r.allocs++
	r.frees++
	return true
}

// apply orders the events of one address by their generations: an
// allocation takes one after the allocator returned the block, a free
// before it released it, so of two threads' events on one address the
// higher number is the later in fact, whichever ring is read first.
func (r *Recorder) apply(rec *rec) {
	kind, addr, gen, image := rec.kind, rec.addr, rec.gen, rec.image
	pid := int(rec.pid)
	p := r.proc(pid)
	switch kind {
	case recAlloc:
		r.allocs++
		if !p.current(image) {
			return // a program image before an execve
		}
		if p.lent != nil {
			p.lent.kill(addr, gen)
		}
		if len(p.tombs) > 0 {
			if t, ok := p.tombs[addr]; ok && genBefore(gen, t.gen) {
				return // freed already
			}
		}
		if old, ok := p.live.get(addr); ok && genBefore(gen, old.gen) {
			return // a later block at this address is known
		}
		p.live.put(addr, newLiveBlock(rec.size, rec.time, gen, rec.stack, rec.fn))
	case recFree:
		r.frees++
		if !p.current(image) {
			return
		}
		if p.lent != nil {
			p.lent.kill(addr, gen)
		}
		if old, ok := p.live.get(addr); ok {
			if genBefore(old.gen, gen) {
				p.live.del(addr)
			}
			return
		}
		if t, ok := p.tombs[addr]; !ok || genBefore(t.gen, gen) {
			if p.tombs == nil {
				p.tombs = map[uint64]tomb{}
			}
			p.tombs[addr] = tomb{gen: gen, pass: r.pass}
		}
	case recRetracted:
		// An allocation and the free of its block, inside one thread,
		// before lsan read the allocation: applied as the pair, whose
		// free would have had a later generation than the allocation
		// and an earlier one than the block's next allocation. An
		// older entry for the address goes. (A retracted record can
		// also be written over by its thread's next allocation: the
		// shim records each block once, so that nothing depends on
		// reading it.)
		r.allocs++
		r.frees++
		if !p.current(image) {
			return
		}
		if p.lent != nil {
			p.lent.kill(addr, gen)
		}
		if old, ok := p.live.get(addr); ok && genBefore(old.gen, gen) {
			p.live.del(addr)
		}
	case recStart:
		// A new program image (execve) or the first: what the process
		// held before it is gone. Other threads' rings may have been read
		// first: what came after it stays.
		p.current(image)
	case recMaps:
		r.rowsWanted[pid] = true
	case recExit:
		select {
		case r.exits <- pid:
		default:
			// Sixty-four exits pending: this one goes unchecked, and
			// must not wait.
			r.ExitDone()
		}
	}
}

// answerRows loads the rows the library asked for and lets it go on.
func (r *Recorder) answerRows(wanted map[int]bool) {
	if len(wanted) == 0 {
		return
	}
	for pid := range wanted {
		if r.opts.RowsRequested != nil {
			r.opts.RowsRequested(pid)
		}
	}
	r.bump(hMapsDone)
}

// Lifecycle says whether the library announces exits and new code.
func (r *Recorder) Lifecycle() bool { return r.opts.Lifecycle }

// Exits are the pids that announced their exit (Options.Lifecycle): each
// waits, about to exit, for ExitDone.
func (r *Recorder) Exits() <-chan int { return r.exits }

// ExitDone lets the processes waiting at their exit go on.
func (r *Recorder) ExitDone() { r.bump(hExitDone) }

// bump adds one to a word the library waits on, and wakes it.
func (r *Recorder) bump(off int) {
	word := r.u32(off)
	atomic.AddUint32(word, 1)
	const futexWake = 1 // FUTEX_WAKE, not FUTEX_PRIVATE_FLAG: the word is in memory shared with the command
	_, _, _ = unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(word)), futexWake, math.MaxInt32, 0, 0, 0)
}

// current tells whether a record of program image image is to be
// applied: a newer image than any seen so far forgets what the process
// held (an execve replaced it), an older one's records come late.
func (p *process) current(image uint32) bool {
	if !p.started || int32(image-p.image) > 0 {
		if p.started {
			p.forget()
		}
		p.image, p.started, p.closed = image, true, false
		return true
	}
	return image == p.image && !p.closed
}

// forget drops what the process held.
func (p *process) forget() {
	p.live.release()
	p.live = newBlockTable()
	clear(p.tombs)
	p.lent = nil // Restore lets what was lent go
}

// dropTombs forgets the frees read before drain pass pass: every
// allocation they could cancel has been applied (drainAtLeast).
func (r *Recorder) dropTombs(pass uint32) {
	for _, p := range r.procs {
		for addr, t := range p.tombs {
			if t.pass < pass {
				delete(p.tombs, addr)
			}
		}
	}
}

// Blocks returns pid's live blocks, every published record applied. A
// record a stopped thread had begun is counted in Counters.Inflight.
func (r *Recorder) Blocks(pid int) ([]bpf.Block, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.current(pid)
	if p == nil {
		return nil, nil
	}
	if p.lent != nil {
		return nil, ErrLent
	}
	mk := r.blockMaker(pid)
	out := make([]bpf.Block, 0, p.live.n)
	p.live.each(func(addr uint64, b liveBlock) { out = append(out, mk.block(addr, b)) })
	return out, nil
}

// ErrLiveSetChanged: the live set changed while EachBlock read it.
var ErrLiveSetChanged = errors.New("the live set changed while it was read: the process ran")

// eachPart is how many blocks EachBlock makes at a time (192 KiB).
const eachPart = 4096

// EachBlock calls fn with each of pid's live blocks, as Blocks returns
// them, without a slice of them all beside the table (a million blocks:
// 48 MiB beside 64): the blocks are made a part at a time under the lock,
// and fn is called without it (it may ask the recorder for a stack). The
// live set must not change meanwhile, as it does not while the process
// is stopped (a check's snapshot); if it does, EachBlock stops with
// ErrLiveSetChanged.
func (r *Recorder) EachBlock(pid int, fn func(bpf.Block)) error {
	r.mu.Lock()
	p := r.current(pid)
	if p == nil {
		r.mu.Unlock()
		return nil
	}
	if p.lent != nil {
		r.mu.Unlock()
		return ErrLent
	}
	t, changes, mk := p.live, p.live.changes, r.blockMaker(pid)
	part := make([]bpf.Block, 0, min(t.n, eachPart))
	for i := 0; ; {
		if r.procs[pid] != p || p.live != t || t.changes != changes {
			r.mu.Unlock()
			return ErrLiveSetChanged
		}
		part = part[:0]
		for ; i < len(t.keys) && len(part) < eachPart; i++ {
			if k := t.keys[i]; k != 0 {
				part = append(part, mk.block(k, t.vals[i]))
			}
		}
		end := i >= len(t.keys)
		r.mu.Unlock()
		for _, b := range part {
			fn(b)
		}
		if end {
			return nil
		}
		r.mu.Lock()
	}
}

// ExpectedBlocks is how many blocks the processes recorded hold, every
// published record applied: a capacity for a caller's arrays for one's
// (EachBlock).
func (r *Recorder) ExpectedBlocks() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drain()
	n := 0
	for _, p := range r.procs {
		n += p.live.n
	}
	return n
}

// current applies every published record and returns pid's process
// (nil: none, or none recorded in its program image).
func (r *Recorder) current(pid int) *process {
	r.inflight = 0
	if _, complete := r.drain(); !complete {
		r.inflight = r.unpublished()
	}
	p := r.procs[pid]
	if p == nil {
		return nil
	}
	if !r.Loaded(pid) && processExists(pid) {
		// A program image the shim is not in (LD_PRELOAD cleared before
		// an execve): what was recorded belonged to the one before,
		// whose records still to come are dropped too.
		p.forget()
		p.closed = true
		return nil
	}
	return p
}

// Take is Blocks for the check at pid's exit, which reads them once, then
// Forget: the live set is handed over as it is, and its memory goes back
// as Taken.Each walks it, so that the blocks' new home and their old one
// are never both whole (a million blocks take 64 MiB here).
func (r *Recorder) Take(pid int) *Taken {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := &Taken{mk: r.blockMaker(pid)}
	if p := r.current(pid); p != nil {
		t.live = p.live
		p.live = newBlockTable()
	}
	r.forgetLocked(pid)
	return t
}

// Taken is a process's live set, handed over by Take.
type Taken struct {
	live *blockTable // nil: none
	mk   blockMaker
}

// Len is the number of blocks.
func (t *Taken) Len() int {
	if t.live == nil {
		return 0
	}
	return t.live.n
}

// Each calls f for every block, in no order, and frees the set as it
// goes: it can be called once.
func (t *Taken) Each(f func(bpf.Block)) {
	if t.live == nil {
		return
	}
	t.live.drain(func(addr uint64, b liveBlock) { f(t.mk.block(addr, b)) })
	t.live = nil
}

// blockMaker turns the live set's entries into the tracer's blocks.
type blockMaker struct {
	pid       int
	start     uint64
	funcIndex []uint16
}

func (r *Recorder) blockMaker(pid int) blockMaker {
	return blockMaker{pid: pid, start: r.start, funcIndex: r.funcIndex}
}

func (mk blockMaker) block(addr uint64, b liveBlock) bpf.Block {
	fn := ^uint16(0)
	if int(b.fn()) < len(mk.funcIndex) {
		fn = mk.funcIndex[b.fn()]
	}
	return bpf.Block{PID: mk.pid, Addr: addr, Size: b.size(), TimestampNS: mk.start + uint64(b.ms)*uint64(time.Millisecond),
		StackID: uint64(b.stack), Fn: fn}
}

// Forget drops what the recorder holds of pid, a process that exited,
// whose exit check has read its blocks, or that is not followed (a
// million blocks take 64 MiB here): its live set would stay until lsan
// exits otherwise, a build's thousands of processes' included. Records of
// it still to come make a small entry again.
func (r *Recorder) Forget(pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgetLocked(pid)
}

func (r *Recorder) forgetLocked(pid int) {
	if p := r.procs[pid]; p != nil {
		p.live.release()
	}
	delete(r.procs, pid)
	if r.lastPID == pid {
		r.last, r.lastPID = nil, 0
	}
}

// unpublished counts reserved slots not yet written.
func (r *Recorder) unpublished() uint64 {
	var n uint64
	for i := 0; i < rings; i++ {
		reserved := atomic.LoadUint64(r.u64(ringsOff + i*ringSize + ringReserve))
		n += reserved - r.consumed[i]
	}
	return n
}

// Freed returns nothing: the recorder serves lsan run, whose roots are
// LSan's, where freed memory is never a root (the attach mode's reason to
// remember freed ranges), so none are kept: the drain keeps up with a
// thread freeing every 20 ns.
func (r *Recorder) Freed(pid int) ([]bpf.FreedRange, error) { return nil, nil }

// Stack is b's allocation stack: the shim's function, then the return
// addresses from its caller outward.
func (r *Recorder) Stack(b bpf.Block) []uint64 {
	var pcs []uint64
	if fa := r.FuncAddr(b); fa != 0 {
		pcs = append(pcs, fa)
	}
	if b.StackID == 0 || b.StackID > stackSlots {
		return pcs
	}
	e := stacksOff + int(b.StackID-1)*stackSize
	depth := min(int(*r.u32(e + 12)), maxDepth)
	for i := 0; i < depth; i++ {
		pcs = append(pcs, *r.u64(e + 16 + 8*i))
	}
	return pcs
}

// FuncAddr is the address in b's process of the shim function that
// allocated b (0 if unknown).
func (r *Recorder) FuncAddr(b bpf.Block) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	addrs, ok := r.funcAddrs[b.PID]
	if !ok {
		addrs = r.shimAddrs(b.PID)
		r.funcAddrs[b.PID] = addrs
	}
	for i, fn := range r.funcIndex {
		if fn == b.Fn && i < len(addrs) {
			return addrs[i]
		}
	}
	return 0
}

// shimAddrs finds where the shim's functions are in pid.
func (r *Recorder) shimAddrs(pid int) []uint64 {
	text, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil
	}
	maps, err := procmaps.Parse(text)
	if err != nil {
		return nil
	}
	offs, err := funcOffsets()
	if err != nil {
		return nil
	}
	for _, m := range maps {
		if filepath.Base(m.Path) != filepath.Base(r.library) || m.Offset != 0 {
			continue
		}
		out := make([]uint64, len(fnNames))
		for i, n := range fnNames {
			if off, ok := offs[n]; ok {
				out[i] = m.Start + off
			}
		}
		return out
	}
	return nil
}

// Counters reads the recorder's counts.
func (r *Recorder) Counters() Counters {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Counters{
		Allocs: r.allocs, Frees: r.frees,
		Lost:          atomic.LoadUint64(r.u64(hCounters + 8*cLost)),
		Disabled:      atomic.LoadUint64(r.u64(hDisabled)) != 0,
		StacksDropped: atomic.LoadUint64(r.u64(hCounters + 8*cStacksFull)),
		Waits:         atomic.LoadUint64(r.u64(hCounters + 8*cWaits)),
		Inflight:      r.inflight,
	}
}

// Rows copies unwind rows into the shared table (bpf.RowsMirror).
func (r *Recorder) Rows(first uint32, rows []unwind.Row) {
	for i, row := range rows {
		k := int(first) + i
		if k >= maxRows {
			return
		}
		off := rowsOff + k*rowSize
		*r.u32(off) = row.PC
		*(*uint16)(unsafe.Pointer(&r.mem[off+4])) = row.CFAOffset
		r.mem[off+6] = byte(row.Kind)
		r.mem[off+7] = byte(row.RBPOffset8)
	}
}

// Mappings publishes pid's executable mappings (bpf.RowsMirror), under
// the slot's sequence count: the shim does not use a list being written.
func (r *Recorder) Mappings(pid int, ms []bpf.UnwindMapping) {
	r.rowsMu.Lock()
	defer r.rowsMu.Unlock()
	slot, ok := r.procMap[pid]
	if !ok {
		slot = r.freeProcSlot()
		if slot < 0 {
			return // more processes than slots: frame pointers for this one
		}
		r.procMap[pid] = slot
	}
	base := procsOff + slot*procMapsSize
	seq := r.u32(base + 4)
	atomic.AddUint32(seq, 1) // odd: being written
	n := min(len(ms), maxMappings)
	for i, m := range ms[:n] {
		off := base + 16 + i*mappingSize
		*r.u64(off) = m.Start
		*r.u64(off + 8) = m.End
		*r.u64(off + 16) = m.Bias
		*r.u32(off + 24) = m.FirstRow
		*r.u32(off + 28) = m.Rows
	}
	atomic.StoreUint32(r.u32(base+8), uint32(n))
	atomic.StoreUint32(r.u32(base), uint32(pid))
	atomic.AddUint32(seq, 1)
	if !ok {
		atomic.AddUint32(r.u32(hProcsGen), 1) // a shim that looked for pid in vain looks again
	}
}

// freeProcSlot finds a slot no live process of ours holds.
func (r *Recorder) freeProcSlot() int {
	used := map[int]bool{}
	for pid, s := range r.procMap {
		if unix.Kill(pid, 0) == unix.ESRCH {
			delete(r.procMap, pid)
			continue
		}
		used[s] = true
	}
	for s := 0; s < procSlots; s++ {
		if !used[s] {
			return s
		}
	}
	return -1
}

func processExists(pid int) bool { return unix.Kill(pid, 0) != unix.ESRCH }

func monotonicNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}
