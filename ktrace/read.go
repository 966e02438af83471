package ktrace

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Space is the address space an object key lives in.
type Space uint32

const (
	SpaceSlab   Space = Space(ktraceKspaceSPACE_SLAB)
	SpacePage   Space = Space(ktraceKspaceSPACE_PAGE)
	SpacePercpu Space = Space(ktraceKspaceSPACE_PERCPU)
)

// Event is the tracepoint that allocated an object.
type Event uint8

const (
	EventKmalloc        Event = Event(ktraceKeventEV_KMALLOC)
	EventKmemCacheAlloc Event = Event(ktraceKeventEV_KMEM_CACHE_ALLOC)
	EventPageAlloc      Event = Event(ktraceKeventEV_PAGE_ALLOC)
	EventPercpuAlloc    Event = Event(ktraceKeventEV_PERCPU_ALLOC)
)

func (e Event) String() string {
	switch e {
	case EventKmalloc:
		return "kmalloc"
	case EventKmemCacheAlloc:
		return "kmem_cache_alloc"
	case EventPageAlloc:
		return "mm_page_alloc"
	case EventPercpuAlloc:
		return "percpu_alloc_percpu"
	}
	return fmt.Sprintf("event(%d)", uint8(e))
}

// Object is one live kernel object.
type Object struct {
	// Addr is the object's address; for pages the pfn, for percpu areas
	// the __percpu pointer.
	Addr  uint64
	Space Space
	Event Event
	// TimestampNS is CLOCK_MONOTONIC at allocation.
	TimestampNS uint64
	// CallSite is the tracepoint's call_site: the kernel function that
	// called the allocator (0 for pages).
	CallSite uint64
	// Cache is the kmem_cache name of kmem_cache_alloc objects.
	Cache string
	// BytesReq is the size asked for, BytesAlloc the size handed out.
	BytesReq, BytesAlloc uint64
	// Order: pages, log2 of the page count.
	Order uint8
	// StackID is the kernel stack (Snapshot.Stacks); < 0 when not stored.
	StackID int32
	PID     uint32
	TID     uint32
	Comm    string

	cache uint64 // struct kmem_cache *, until its name is looked up
}

// Counters count events since Open.
type Counters struct {
	Allocs     uint64 // allocations recorded
	AllocDrops uint64 // not recorded: the object map was full
	StackDrops uint64 // stacks not stored (map full, or a collision)
	Frees      uint64 // frees of recorded objects
	SampledOut uint64 // skipped by --sample-rate
	Filtered   uint64 // other processes' (--pid), lsan's own
	// Missed: program runs the kernel skipped because another BPF program
	// ran on the CPU (recursion): allocations or frees not seen.
	Missed uint64
}

// Snapshot is the tracer's state at one moment.
type Snapshot struct {
	Objects []Object
	// Stacks holds the kernel stack of every object's StackID, innermost
	// first, as the kernel stored it.
	Stacks   map[int32][]uint64
	Counters Counters
	// NowNS is CLOCK_MONOTONIC when the snapshot was taken.
	NowNS uint64
}

// Snapshot reads every live object, their stacks and the counters, then
// forgets the stacks no live object has used for two snapshots in a row.
func (t *Tracer) Snapshot() (*Snapshot, error) {
	now := monotonicNow()
	objs, err := t.readObjects()
	if err != nil {
		return nil, err
	}
	names := t.cacheNames()
	s := &Snapshot{Objects: objs, Stacks: map[int32][]uint64{}, NowNS: now}
	for i := range s.Objects {
		o := &s.Objects[i]
		if o.Event == EventKmemCacheAlloc {
			o.Cache = names[o.cache]
		}
		if o.StackID >= 0 {
			if _, done := s.Stacks[o.StackID]; !done {
				s.Stacks[o.StackID] = t.stack(o.StackID)
			}
		}
	}
	s.Counters, err = t.counters()
	if err != nil {
		return nil, err
	}
	t.pruneStacks(s.Stacks)
	return s, nil
}

// batchSize: objects read per syscall.
const batchSize = 4096

func (t *Tracer) readObjects() ([]Object, error) {
	var out []Object
	keys := make([]ktraceKobjKey, batchSize)
	vals := make([]ktraceKobj, batchSize)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := t.objects.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			out = append(out, toObject(keys[i], vals[i]))
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read live kernel objects: %w", err)
		}
	}
}

func toObject(k ktraceKobjKey, v ktraceKobj) Object {
	o := Object{
		Addr: k.Addr, Space: Space(k.Space), Event: Event(v.Event),
		TimestampNS: v.TsNs, CallSite: v.CallSite,
		BytesReq: v.BytesReq, BytesAlloc: v.BytesAlloc, Order: v.Order,
		StackID: v.StackId, PID: v.Pid, TID: v.Tid, Comm: commString(v.Comm),
		cache: v.Cache,
	}
	return o
}

func (t *Tracer) cacheNames() map[uint64]string {
	names := map[uint64]string{}
	var key uint64
	var val [32]byte
	it := t.caches.Iterate()
	for it.Next(&key, &val) {
		names[key] = cString(val[:])
	}
	return names
}

func (t *Tracer) stack(id int32) []uint64 {
	var frames [127]uint64
	if err := t.stacks.Lookup(uint32(id), &frames); err != nil {
		return nil
	}
	for i, pc := range frames {
		if pc == 0 {
			return append([]uint64(nil), frames[:i]...)
		}
	}
	return append([]uint64(nil), frames[:]...)
}

func (t *Tracer) counters() (Counters, error) {
	var c Counters
	sum := func(idx ktraceKcounter) (uint64, error) {
		var perCPU []uint64
		if err := t.counterMap.Lookup(uint32(idx), &perCPU); err != nil {
			return 0, fmt.Errorf("read counters: %w", err)
		}
		var n uint64
		for _, v := range perCPU {
			n += v
		}
		return n, nil
	}
	for _, f := range []struct {
		idx ktraceKcounter
		dst *uint64
	}{
		{ktraceKcounterC_ALLOCS, &c.Allocs}, {ktraceKcounterC_ALLOC_DROPS, &c.AllocDrops},
		{ktraceKcounterC_STACK_DROPS, &c.StackDrops}, {ktraceKcounterC_FREES, &c.Frees},
		{ktraceKcounterC_SAMPLED_OUT, &c.SampledOut}, {ktraceKcounterC_FILTERED, &c.Filtered},
	} {
		n, err := sum(f.idx)
		if err != nil {
			return c, err
		}
		*f.dst = n
	}
	for _, p := range t.progs {
		if st, err := p.Stats(); err == nil {
			c.Missed += st.RecursionMisses
		}
	}
	return c, nil
}

// pruneStacks deletes the stacks that no live object referenced in this
// snapshot nor in the one before: the map then holds the stacks of live
// objects, not of everything ever allocated. Two looks, because an object
// recorded after the objects were read may already use a stack.
func (t *Tracer) pruneStacks(live map[int32][]uint64) {
	var id uint32
	next := map[int32]bool{}
	it := t.stacks.Iterate()
	var frames [127]uint64
	var stale []uint32
	for it.Next(&id, &frames) {
		sid := int32(id)
		if _, used := live[sid]; used {
			continue
		}
		if t.unreferenced[sid] {
			stale = append(stale, id)
			continue
		}
		next[sid] = true
	}
	for _, id := range stale {
		t.stacks.Delete(id)
	}
	t.unreferenced = next
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func commString(c [16]int8) string {
	b := make([]byte, 0, len(c))
	for _, x := range c {
		if x == 0 {
			break
		}
		b = append(b, byte(x))
	}
	return string(b)
}
