// lsan's user-stack unwinder: walks the stack of the current thread with
// the CFI rows the loader compiled from each mapped object's .eh_frame /
// .debug_frame (package unwind), falling back to frame pointers for code
// without rows (auto mode). Included by lsan.bpf.c; docs/unwind.md
// describes the maps and the walk.
#ifndef LSAN_UNWIND_H
#define LSAN_UNWIND_H

// Executable mappings per process that get tables. A process with more
// (hundreds of plugins) has the rest unwound by frame pointers or cut
// with a marker. A power of two: the search masks indexes with it.
#define UNWIND_MAX_MAPPINGS 256
// Steps of the binary search over one process's mappings: log2 of the
// above.
#define UNWIND_MAPPING_STEPS 8
// Steps of the binary search over one module's rows: 2^24 rows is far
// more than the largest object here has (libxul-sized files have ~1M).
#define UNWIND_ROW_STEPS 24
// Bytes of stack read at once (unwind_read): a stack-read helper call
// costs ~100 ns however little it copies, and a few frames' words
// usually lie within this many bytes. A power of two.
#define UNWIND_WINDOW 512
// Entries of the per-CPU row cache (unwind_lookup): 2^UNWIND_CACHE_BITS.
#define UNWIND_CACHE_BITS 11
#define UNWIND_CACHE_SLOTS (1 << UNWIND_CACHE_BITS)
// The walk cache (unwind_replay): 2^UNWIND_WALK_BITS walks per CPU, of up
// to UNWIND_WALK_WORDS stack words each.
#define UNWIND_WALK_BITS 6
#define UNWIND_WALK_SLOTS (1 << UNWIND_WALK_BITS)
#define UNWIND_WALK_WORDS 24
// The walk takes one frame per step; one more than the depth, so that a
// stack deeper than MAX_STACK_DEPTH is seen to be cut.
#define UNWIND_STEPS (MAX_STACK_DEPTH + 1)

// How stacks are taken (--unwind): set by the loader.
enum unwind_mode {
	UNWIND_MODE_FP = 0,   // bpf_get_stack's frame-pointer walk
	UNWIND_MODE_AUTO = 1, // CFI rows where a module has them, frame pointers elsewhere
	UNWIND_MODE_CFI = 2,  // CFI rows only; code without rows ends the stack
};

// Row kinds: the values of package unwind's Kind.
enum unwind_kind {
	UNWIND_KIND_NONE = 0,
	UNWIND_KIND_RSP = 1,
	UNWIND_KIND_RBP = 2,
	UNWIND_KIND_PLT = 3,
	UNWIND_KIND_EXPRESSION = 4,
	UNWIND_KIND_SIGNAL = 5,
	UNWIND_KIND_END = 6,
};

// A stack the walk had to cut short ends with one of these frames: kernel
// addresses, never a user PC, that the loader names in reports.
// 16 apart: reports look callers up at PC - 1, which must not name the
// next marker.
#define UNWIND_MARK_NO_TABLE 0xffffffffffff0010ULL   // code with no CFI row (and no frame-pointer fallback)
#define UNWIND_MARK_EXPRESSION 0xffffffffffff0020ULL // a DWARF expression rule
#define UNWIND_MARK_READ 0xffffffffffff0030ULL       // the stack could not be read
#define UNWIND_MARK_DEPTH 0xffffffffffff0040ULL      // deeper than MAX_STACK_DEPTH
#define UNWIND_MARK_BAD_FRAME 0xffffffffffff0050ULL  // a frame pointer chain that goes wrong
#define UNWIND_MARK_STALE 0xffffffffffff0060ULL      // a new program image (execve) whose tables are not loaded yet

enum unwind_counter {
	UNWIND_COUNTER_STACKS = 0,     // stacks walked with rows
	UNWIND_COUNTER_COMPLETE = 1,   // ... that reached the outermost frame
	UNWIND_COUNTER_NO_TABLE = 2,   // cut: no row for a PC
	UNWIND_COUNTER_EXPRESSION = 3, // cut: expression rule
	UNWIND_COUNTER_READ = 4,       // cut: unreadable stack memory
	UNWIND_COUNTER_DEPTH = 5,      // cut: too deep
	UNWIND_COUNTER_BAD_FRAME = 6,  // cut: frame going down the stack
	UNWIND_COUNTER_FP_FRAMES = 7,  // frames unwound by frame pointer (auto)
	UNWIND_COUNTER_NO_PROCESS = 8, // process without tables: frame-pointer stack
	UNWIND_COUNTER_STALE = 9,      // cut: tables of the image before an execve
	UNWIND_COUNTER_REPLAYS = 10,   // stacks taken from the walk cache (also in the above)
	UNWIND_COUNTER_TRAMPOLINES = 11, // return addresses that were the uretprobe trampoline
	UNWIND_COUNTER_LATE = 12,      // stacks sent to the loader to be walked again (struct late_stack)
	UNWIND_COUNTER_LATE_DROPPED = 13, // ... that did not fit the late_stacks ring: they stay cut
	UNWIND_COUNTER_MAX = 14,
};

// One row: package unwind's Row, 8 bytes.
struct unwind_row {
	__u32 pc; // ELF virtual address where the rule starts
	__u16 cfa_offset;
	__u8 kind;
	signed char rbp_offset8; // rbp saved at CFA + 8*this; 0: unchanged
};

// One executable mapping of a process and its module's rows in
// unwind_rows: [first_row, first_row + nrows). nrows 0: no CFI (frame
// pointers in auto mode).
struct unwind_mapping {
	__u64 start, end; // runtime addresses
	__u64 bias;       // runtime address - ELF virtual address
	__u32 first_row;
	__u32 nrows;
};

// A process's executable mappings, sorted by start, as of its program
// image `generation` (struct target's execve count).
struct unwind_mappings {
	__u32 n;
	__u16 generation;
	__u16 maps_seq; // struct target's maps_seq when the loader read the mappings
	struct unwind_mapping m[UNWIND_MAX_MAPPINGS];
};

volatile const __u32 unwind_mode = UNWIND_MODE_FP;

// The rows of every loaded module, one after the other. Each file gets
// its rows once, shared by all processes that map it. Sized by the loader
// (Options.MaxUnwindRows).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << 20);
	__type(key, __u32);
	__type(value, struct unwind_row);
} unwind_rows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TARGETS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32); // tgid
	__type(value, struct unwind_mappings);
} unwind_procs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, UNWIND_COUNTER_MAX);
	__type(key, enum unwind_counter);
	__type(value, __u64);
} unwind_counters SEC(".maps");

// unwind_scratch holds the row cache and the window of the stack the walk
// reads from (its place and size are in the walk's state, struct
// unwind_state).
struct unwind_scratch {
	// The row cache (unwind_lookup): the index of a row in unwind_rows
	// (high 32 bits) and of its mapping in the process's list (low).
	__u64 cache[UNWIND_CACHE_SLOTS];
	// seq numbers the stacks this CPU takes with the window (struct
	// unwind_walk).
	__u32 seq;
	__u32 _pad;
	__u8 win[UNWIND_WINDOW + 8]; // + 8: a word read at the last offset the mask allows
};

// Counts of what invalidates the walk cache's entries, each bumped by lsan
// after the change: an entry is used only while both are what they were
// when its walk began.
enum unwind_epoch {
	// Tracer.PruneStacks deleted stored stacks: a remembered walk's
	// stack may be gone (a replay does not look it up).
	UNWIND_EPOCH_STACKS = 0,
	// The loader wrote a process's mapping list (unwind_procs): a
	// remembered walk's modules or biases may be others now (a replay
	// does not look the list up).
	UNWIND_EPOCH_MAPPINGS = 1,
	UNWIND_EPOCH_MAX = 2,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, UNWIND_EPOCH_MAX);
	__type(key, enum unwind_epoch);
	__type(value, __u32);
} unwind_epochs SEC(".maps");

// One walk remembered: where it started, the stack words its outcome
// depends on, and the stack it stored (unwind_replay).
struct unwind_walk {
	__u64 stack_id; // 0: no walk
	// check is a hash of the rest (unwind_walk_sum), set with stack_id
	// by the walk numbered seq (unwind_remember): an entry that two walks
	// wrote parts of (one preempted by the other on its CPU) fails it.
	__u64 check;
	__u32 seq;
	__u32 _pad0;
	// The unwind_epochs counts when the walk began (before it looked up
	// the mapping list and found or stored its stack).
	__u32 stacks_epoch, mappings_epoch;
	__u64 pc, sp;   // the walk's first pc and rsp
	__u64 bp;       // its first rbp, when the walk used it (uses_bp)
	__u32 tgid;
	__u16 generation; // the process's program image (struct target)
	__u8 nwords, uses_bp;
	__u8 end;       // the counter that ended it (complete or a cut)
	__u8 fp_frames; // frames it took by frame pointer
	__u16 _pad;
	__s32 off[UNWIND_WALK_WORDS]; // word address - sp
	__u64 val[UNWIND_WALK_WORDS];
};

struct unwind_walks {
	struct unwind_walk w[UNWIND_WALK_SLOTS];
};

#if defined(__TARGET_ARCH_x86)
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct unwind_scratch);
} unwind_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct unwind_walks);
} unwind_walks SEC(".maps");
#endif

static __always_inline void unwind_count(enum unwind_counter which)
{
	__u64 *c = bpf_map_lookup_elem(&unwind_counters, &which);
	if (c)
		*c += 1;
}

// Where a walk started, for a late stack (struct late_stack).
struct unwind_start {
	__u64 pc, sp, bp;
	int late;
};

#if defined(__TARGET_ARCH_x86)

// The walk's state, passed to each step. Scalars only: unwind_step, a
// global function, sees it as plain memory.
struct unwind_state {
	__u64 pc, sp, bp;
	__u32 n;        // frames stored in stack_scratch
	__u8 is_return; // pc is a return address: look up pc - 1
	__u8 done;
	__u8 uprobes_read; // tramp and ri are read (unwind_real_return)
	// win_short: a window ran past the end of the stack's mapping; later
	// ones end at their page's end.
	__u8 win_short;
	// tramp is the uretprobe trampoline's address in this process (0:
	// none mapped); ri the next pending return instance (a kernel
	// pointer), whose orig_ret_vaddr is what the next trampoline found on
	// the stack stands for.
	__u64 tramp, ri;
	// The stack bytes [win_base, win_base + win_len) are in
	// unwind_scratch's window.
	__u64 win_base;
	__u32 win_len;
	// What the walk cache keeps of this walk: rec_n words recorded in
	// its entry so far; rec_ok: the outcome depends on nothing else (no
	// trampoline, no failed read, not too many words). bp_from: the
	// stack address rbp was last read from, 0 while it is the first
	// rbp; a value of rbp is recorded only when the walk uses it (in
	// code without frame pointers rbp holds data, which changes from
	// call to call). end, fp_frames: as in struct unwind_walk.
	__u8 rec_n, rec_ok, end, fp_frames;
	__u64 sp0, bp_from;
	// list_stale: the process's mapping list predates the dynamic
	// linker's last change (maps_seq). late: the walk met code in no
	// mapping of that list, which may be a module mapped since: the
	// stack is sent to the loader to be walked again.
	__u8 list_stale, late;
};


// unwind_uretprobes reads where the current thread's uretprobe trampoline
// is and its first pending return instance. Any tool's uretprobe on a
// function in the stack (another lsan's on malloc, bcc's memleak) puts
// the trampoline's address in place of the return address.
static __always_inline void unwind_uretprobes(struct unwind_state *s)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct mm_struct *mm = 0;
	struct xol_area *area = 0;
	struct uprobe_task *ut = 0;
	if (bpf_probe_read_kernel(&mm, sizeof(mm), &task->mm) || !mm ||
	    bpf_probe_read_kernel(&area, sizeof(area), &mm->uprobes_state.xol_area) || !area ||
	    bpf_probe_read_kernel(&s->tramp, sizeof(s->tramp), &area->vaddr))
		return;
	if (bpf_probe_read_kernel(&ut, sizeof(ut), &task->utask) || !ut)
		return;
	bpf_probe_read_kernel(&s->ri, sizeof(s->ri), &ut->return_instances);
}

// unwind_real_return turns a return address that is the uretprobe
// trampoline into the one it replaced, consuming the return instance (and
// those chained to it: a tail call from one probed function into another
// shares one trampoline slot). Anything else is returned as it is.
// The trampoline lies in no mapping with rows, so the walk asks only
// about return addresses outside them: the kernel reads it takes (five)
// are made for the first such address of a stack, which most stacks
// never have.
static __always_inline __u64 unwind_real_return(struct unwind_state *s, __u64 ra)
{
	if (!s->uprobes_read) {
		unwind_uretprobes(s);
		s->uprobes_read = 1;
	}
	if (!s->tramp || ra != s->tramp)
		return ra;
	s->rec_ok = 0; // the kernel's return instances are no stack words
	unwind_count(UNWIND_COUNTER_TRAMPOLINES);
	if (!s->ri)
		return ra;
	struct return_instance *ri = (struct return_instance *)s->ri;
	__u64 orig = 0;
	if (bpf_probe_read_kernel(&orig, sizeof(orig), &ri->orig_ret_vaddr))
		return ra;
	for (int i = 0; i < 8 && ri; i++) {
		_Bool chained = 0;
		bpf_probe_read_kernel(&chained, sizeof(chained), &ri->chained);
		if (bpf_probe_read_kernel(&ri, sizeof(ri), &ri->next))
			ri = 0;
		if (!chained)
			break;
	}
	s->ri = (__u64)ri;
	return orig;
}

// unwind_find_mapping_index returns the index of the mapping holding pc,
// or UNWIND_MAX_MAPPINGS when none does. A global function.
__attribute__((noinline)) int unwind_find_mapping_index(struct unwind_mappings *maps, __u64 pc)
{
	if (!maps)
		return UNWIND_MAX_MAPPINGS;
	__u32 lo = 0, cnt = maps->n;
	if (cnt > UNWIND_MAX_MAPPINGS)
		cnt = UNWIND_MAX_MAPPINGS;
	// lo ends at the first mapping starting above pc.
	for (int i = 0; i < UNWIND_MAPPING_STEPS + 1 && cnt > 0; i++) {
		__u32 half = cnt / 2, mid = (lo + half) & (UNWIND_MAX_MAPPINGS - 1);
		if (maps->m[mid].start <= pc) {
			lo = mid + 1;
			cnt -= half + 1;
		} else {
			cnt = half;
		}
	}
	if (lo == 0)
		return UNWIND_MAX_MAPPINGS;
	__u32 i = (lo - 1) & (UNWIND_MAX_MAPPINGS - 1);
	return pc < maps->m[i].end ? i : UNWIND_MAX_MAPPINGS;
}

// unwind_find_mapping returns the mapping holding pc, or NULL.
static __always_inline struct unwind_mapping *unwind_find_mapping(struct unwind_mappings *maps,
								   __u64 pc)
{
	__u32 i = unwind_find_mapping_index(maps, pc);
	return i < UNWIND_MAX_MAPPINGS ? &maps->m[i] : NULL;
}

// No row (unwind_find_row).
#define UNWIND_NO_ROW 0xffffffffU

// unwind_find_row copies the row in effect at vaddr into *row and returns
// its index in unwind_rows; it leaves *row alone (kind NONE) and returns
// UNWIND_NO_ROW when the module has none there.
static __always_inline __u32 unwind_find_row(struct unwind_mapping *m, __u64 vaddr,
					     struct unwind_row *row)
{
	if (vaddr > 0xffffffffULL)
		return UNWIND_NO_ROW;
	__u32 first = m->first_row, lo = first, cnt = m->nrows;
	for (int i = 0; i < UNWIND_ROW_STEPS + 1 && cnt > 0; i++) {
		__u32 half = cnt / 2, mid = lo + half;
		struct unwind_row *r = bpf_map_lookup_elem(&unwind_rows, &mid);
		if (!r)
			return UNWIND_NO_ROW;
		if (r->pc <= (__u32)vaddr) {
			lo = mid + 1;
			cnt -= half + 1;
		} else {
			cnt = half;
		}
	}
	if (lo == first)
		return UNWIND_NO_ROW;
	__u32 idx = lo - 1;
	struct unwind_row *r = bpf_map_lookup_elem(&unwind_rows, &idx);
	if (!r)
		return UNWIND_NO_ROW;
	*row = *r;
	return idx;
}

// unwind_row_holds tells whether row idx of m's module is the one the
// search above finds for vaddr: the last of the module's rows starting at
// or below it (rows are sorted). If so it copies it into *row.
static __always_inline int unwind_row_holds(struct unwind_mapping *m, __u32 idx, __u64 vaddr,
					    struct unwind_row *row)
{
	__u32 k = idx - m->first_row; // wraps for idx below the module's rows
	if (vaddr > 0xffffffffULL || k >= m->nrows)
		return 0;
	struct unwind_row *r = bpf_map_lookup_elem(&unwind_rows, &idx);
	if (!r || r->pc > (__u32)vaddr)
		return 0;
	if (k + 1 < m->nrows) {
		__u32 next = idx + 1;
		struct unwind_row *after = bpf_map_lookup_elem(&unwind_rows, &next);
		if (!after || after->pc <= (__u32)vaddr)
			return 0;
	}
	*row = *r;
	return 1;
}

// unwind_lookup finds the mapping holding pc (its index;
// UNWIND_MAX_MAPPINGS: none) and copies the
// row in effect there into *row (left alone when there is none). The
// per-CPU cache remembers, for a hash of pc, the mapping and row the last
// search found; they are checked against the process's mappings and the
// module's rows before they are used (unwind_row_holds), so an entry left
// by another process, another pc with the same hash, or mappings and
// rows that changed since is a miss, never a wrong row. A hit costs a
// mapping and two rows read instead of the two binary searches (~8 and
// ~15 steps for libc).
// A global function, like unwind_step (verified once).
__attribute__((noinline)) int unwind_lookup(struct unwind_mappings *maps, struct unwind_scratch *sc,
					    __u64 pc, struct unwind_row *row)
{
	if (!maps || !sc || !row)
		return UNWIND_MAX_MAPPINGS;
	__u32 slot = ((pc * 0x9e3779b97f4a7c15ULL) >> (64 - UNWIND_CACHE_BITS)) &
		     (UNWIND_CACHE_SLOTS - 1);
	__u64 e = sc->cache[slot];
	__u32 mi = e & (UNWIND_MAX_MAPPINGS - 1);
	struct unwind_mapping *m = &maps->m[mi];
	if (mi < maps->n && m->start <= pc && pc < m->end) {
		if (unwind_row_holds(m, e >> 32, pc - m->bias, row))
			return mi;
	} else {
		mi = unwind_find_mapping_index(maps, pc);
		if (mi >= UNWIND_MAX_MAPPINGS)
			return UNWIND_MAX_MAPPINGS;
		m = &maps->m[mi];
	}
	__u32 idx = unwind_find_row(m, pc - m->bias, row);
	if (idx != UNWIND_NO_ROW)
		sc->cache[slot] = (__u64)idx << 32 | mi;
	return mi;
}

// unwind_end ends the walk and counts how.
static __always_inline long unwind_end(struct unwind_state *s, enum unwind_counter counter)
{
	s->done = 1;
	s->end = counter;
	if (counter == UNWIND_COUNTER_READ)
		s->rec_ok = 0; // a read that may not fail next time
	unwind_count(counter);
	return 1;
}

// unwind_note records that the walk's outcome depends on the stack word
// at addr being val.
static __always_inline void unwind_note(struct unwind_state *s, struct unwind_walk *w, __u64 addr,
					__u64 val)
{
	__u32 i = s->rec_n;
	__s64 off = addr - s->sp0;
	if (!s->rec_ok || i >= UNWIND_WALK_WORDS || off != (__s32)off) {
		s->rec_ok = 0;
		return;
	}
	s->rec_n = i + 1;
	// Opaque to clang, which would index with a copy of i the verifier
	// has no bound for.
	asm volatile("" : "+r"(i));
	if (i < UNWIND_WALK_WORDS) {
		w->off[i] = off;
		w->val[i] = val;
	}
}

// unwind_note_bp records that the outcome depends on rbp's value: on the
// word it was read from, or on the first rbp.
static __always_inline void unwind_note_bp(struct unwind_state *s, struct unwind_walk *w)
{
	if (s->bp_from)
		unwind_note(s, w, s->bp_from, s->bp);
	else
		w->uses_bp = 1;
}

// unwind_unknown: the walk met code in no mapping of the process's list.
// While the list predates the dynamic linker's last change the code may be
// a module dlopened since: the walk goes on as for code without rows, and
// the stack is walked again by the loader once it has the rows. Such a
// walk depends on more than its stack words: not kept.
static __always_inline void unwind_unknown(struct unwind_state *s)
{
	if (s->list_stale) {
		s->late = 1;
		s->rec_ok = 0;
	}
}

// unwind_cut ends the stack with a marker frame and counts why.
static __always_inline long unwind_cut(struct unwind_state *s, struct stack *st, __u64 marker,
				       enum unwind_counter counter)
{
	__u32 n = s->n;
	if (n >= MAX_STACK_DEPTH)
		n = MAX_STACK_DEPTH - 1; // the marker replaces the last frame
	// Opaque to clang, which would otherwise drop the mask (it knows n
	// is below the depth) where the verifier cannot tell.
	asm volatile("" : "+r"(n));
	st->pcs[n & (MAX_STACK_DEPTH - 1)] = marker;
	s->n = n + 1;
	return unwind_end(s, counter);
}

// unwind_fill reads a new window holding the word at addr and takes the
// word from it. The window starts at most 64 bytes below addr (a frame's
// saved registers lie just below its return address), never below the
// frame's rsp (the stack below it need not be mapped), and runs
// UNWIND_WINDOW bytes up; where that fails (past the top of the stack's
// mapping) it runs to the end of addr's page. A word that reads as
// nothing else is read alone.
// A global function (verified once, not at each read).
__attribute__((noinline)) int unwind_fill(struct unwind_state *s, struct unwind_scratch *sc,
					  __u64 *dst, __u64 addr)
{
	if (!s || !sc || !dst)
		return -1;
	__u64 base = addr >= s->sp + 64 ? addr - 64 : (addr >= s->sp ? s->sp : addr);
	__u32 len = UNWIND_WINDOW;
	if (s->win_short || bpf_probe_read_user(sc->win, UNWIND_WINDOW, (void *)base)) {
		s->win_short = 1;
		base = addr;
		__u64 left = 4096 - (addr & 4095);
		len = left < UNWIND_WINDOW ? left : UNWIND_WINDOW;
		if (len < 8 || bpf_probe_read_user(sc->win, len & (2 * UNWIND_WINDOW - 1), (void *)base)) {
			s->win_len = 0;
			return bpf_probe_read_user(dst, sizeof(*dst), (void *)addr);
		}
	}
	s->win_base = base;
	s->win_len = len;
	*dst = *(__u64 *)&sc->win[(addr - base) & (UNWIND_WINDOW - 1)];
	return 0;
}

// unwind_read reads the stack word at addr, from the window when it
// holds it.
static __always_inline long unwind_read(struct unwind_state *s, struct unwind_scratch *sc,
					__u64 *dst, __u64 addr)
{
	__u64 off = addr - s->win_base;
	if (addr >= s->win_base && off + sizeof(*dst) <= s->win_len) {
		*dst = *(__u64 *)&sc->win[off & (UNWIND_WINDOW - 1)];
		return 0;
	}
	return unwind_fill(s, sc, dst, addr);
}

// unwind_signal_frame restores the registers a signal interrupted, from
// the ucontext the kernel put at rsp (__restore_rt runs with it there).
static __always_inline long unwind_signal_frame(struct unwind_state *s, struct stack *st,
					       struct unwind_scratch *sc, struct unwind_walk *w)
{
	// struct ucontext: uc_mcontext at 40; in it rbp at 80, rsp at 120,
	// rip at 128.
	__u64 bp, sp, ip, at = s->sp + 40;
	if (unwind_read(s, sc, &bp, at + 80) || unwind_read(s, sc, &sp, at + 120) ||
	    unwind_read(s, sc, &ip, at + 128))
		return unwind_cut(s, st, UNWIND_MARK_READ, UNWIND_COUNTER_READ);
	unwind_note(s, w, at + 120, sp);
	unwind_note(s, w, at + 128, ip);
	s->bp = bp;
	s->bp_from = at + 80;
	s->sp = sp;
	s->pc = ip;
	s->is_return = 0; // the interrupted instruction itself
	return 0;
}

// unwind_fp_frame steps over one frame by its frame pointer. Code without
// rows may not keep frame pointers either (musl's libc.a): the step is
// taken only when the saved frame pointer moves up the stack and the
// return address lies in a mapping the loader knows, else the stack is cut
// (never a junk frame).
static __always_inline long unwind_fp_frame(struct unwind_state *s, struct stack *st,
					    struct unwind_mappings *maps, struct unwind_scratch *sc,
					    struct unwind_walk *w)
{
	__u64 bp = s->bp, saved[2];
	unwind_note_bp(s, w);
	if (bp == 0) // the outermost frame of frame-pointer code zeroes rbp
		return unwind_end(s, UNWIND_COUNTER_COMPLETE);
	if (bp < s->sp || (bp & 7))
		return unwind_cut(s, st, UNWIND_MARK_BAD_FRAME, UNWIND_COUNTER_BAD_FRAME);
	if (unwind_read(s, sc, &saved[0], bp) || unwind_read(s, sc, &saved[1], bp + 8))
		return unwind_cut(s, st, UNWIND_MARK_READ, UNWIND_COUNTER_READ);
	unwind_note(s, w, bp, saved[0]);
	unwind_note(s, w, bp + 8, saved[1]);
	if (saved[0] && saved[0] <= bp)
		return unwind_cut(s, st, UNWIND_MARK_BAD_FRAME, UNWIND_COUNTER_BAD_FRAME);
	if (!unwind_find_mapping(maps, saved[1] - 1)) {
		saved[1] = unwind_real_return(s, saved[1]);
		if (!unwind_find_mapping(maps, saved[1] - 1)) {
			unwind_unknown(s);
			return unwind_cut(s, st, UNWIND_MARK_BAD_FRAME, UNWIND_COUNTER_BAD_FRAME);
		}
	}
	unwind_count(UNWIND_COUNTER_FP_FRAMES);
	s->fp_frames++;
	s->bp = saved[0];
	s->bp_from = bp;
	s->pc = saved[1];
	s->sp = bp + 16;
	s->is_return = 1;
	return 0;
}

// unwind_step records the current frame and steps to its caller; it
// returns 1 when the walk is over. A global function: the verifier checks
// it once, with its state unknown, instead of once per frame and per path
// through the searches (which exceeds its budget). Its pointers are the
// walk's (unwind_user_stack looks them up once a stack).
__attribute__((noinline)) int unwind_step(struct unwind_state *s, struct unwind_mappings *maps,
					  struct stack *st, struct unwind_scratch *sc,
					  struct unwind_walk *w)
{
	if (!s || !maps || !st || !sc || !w)
		return 1;
	__u32 n = s->n;
	if (n >= MAX_STACK_DEPTH)
		return unwind_cut(s, st, UNWIND_MARK_DEPTH, UNWIND_COUNTER_DEPTH);
	if (s->pc == 0)
		return unwind_end(s, UNWIND_COUNTER_COMPLETE);
	__u64 pc = s->pc - s->is_return;
	struct unwind_row row = {.kind = UNWIND_KIND_NONE};
	// No mapping: code that is not file-backed (a JIT) or a module mapped
	// since the loader last looked; as code without rows.
	int found = unwind_lookup(maps, sc, pc, &row) < UNWIND_MAX_MAPPINGS;
	if (!found && s->is_return) {
		// The uretprobe trampoline stands for the real return address.
		__u64 ra = unwind_real_return(s, s->pc);
		if (ra != s->pc) {
			s->pc = ra;
			pc = ra - 1;
			found = unwind_lookup(maps, sc, pc, &row) < UNWIND_MAX_MAPPINGS;
		}
	}
	if (!found)
		unwind_unknown(s);
	st->pcs[n & (MAX_STACK_DEPTH - 1)] = s->pc;
	s->n = n + 1;

	__u64 cfa;
	switch (row.kind) {
	case UNWIND_KIND_RSP:
		cfa = s->sp + row.cfa_offset;
		break;
	case UNWIND_KIND_RBP:
		unwind_note_bp(s, w);
		cfa = s->bp + row.cfa_offset;
		break;
	case UNWIND_KIND_PLT:
		// push of the relocation index at offset 6 of each 16-byte entry
		cfa = s->sp + 8 + (((s->pc & 15) >= 11) ? 8 : 0);
		break;
	case UNWIND_KIND_SIGNAL:
		return unwind_signal_frame(s, st, sc, w);
	case UNWIND_KIND_END:
		return unwind_end(s, UNWIND_COUNTER_COMPLETE);
	case UNWIND_KIND_EXPRESSION:
		return unwind_cut(s, st, UNWIND_MARK_EXPRESSION, UNWIND_COUNTER_EXPRESSION);
	default:
		if (unwind_mode == UNWIND_MODE_AUTO)
			return unwind_fp_frame(s, st, maps, sc, w);
		return unwind_cut(s, st, UNWIND_MARK_NO_TABLE, UNWIND_COUNTER_NO_TABLE);
	}
	if (cfa <= s->sp && row.kind == UNWIND_KIND_RBP)
		return unwind_cut(s, st, UNWIND_MARK_BAD_FRAME, UNWIND_COUNTER_BAD_FRAME);
	__u64 ra;
	if (unwind_read(s, sc, &ra, cfa - 8))
		return unwind_cut(s, st, UNWIND_MARK_READ, UNWIND_COUNTER_READ);
	unwind_note(s, w, cfa - 8, ra);
	if (row.rbp_offset8) {
		__u64 bp, at = cfa + (__s64)row.rbp_offset8 * 8;
		if (unwind_read(s, sc, &bp, at))
			return unwind_cut(s, st, UNWIND_MARK_READ, UNWIND_COUNTER_READ);
		s->bp = bp;
		s->bp_from = at;
	}
	s->sp = cfa;
	s->pc = ra; // the uretprobe trampoline's is replaced at the next step
	s->is_return = 1;
	return 0;
}

// unwind_walk takes the frames from s on. A global function too: the
// loop is verified once, not at each of the places the probes take a
// stack (the verifier would go through its iterations at each of them).
__attribute__((noinline)) int unwind_walk(struct unwind_state *s, struct unwind_mappings *maps,
					  struct stack *st, struct unwind_scratch *sc,
					  struct unwind_walk *w)
{
	for (int i = 0; i < UNWIND_STEPS; i++)
		if (unwind_step(s, maps, st, sc, w))
			break;
	return 0;
}

static __always_inline __u64 unwind_mix(__u64 h, __u64 v)
{
	h ^= v;
	h *= 0x100000001b3ULL;
	return h ^ (h >> 29);
}

// unwind_walk_sum hashes what a walk entry says (all but check). A
// global function.
__attribute__((noinline)) __u64 unwind_walk_sum(struct unwind_walk *w)
{
	if (!w)
		return 0;
	__u64 h = 0xcbf29ce484222325ULL;
	h = unwind_mix(h, w->stack_id);
	h = unwind_mix(h, w->seq);
	h = unwind_mix(h, (__u64)w->stacks_epoch << 32 | w->mappings_epoch);
	h = unwind_mix(h, w->pc);
	h = unwind_mix(h, w->sp);
	h = unwind_mix(h, w->bp);
	h = unwind_mix(h, (__u64)w->tgid << 32 | w->generation);
	h = unwind_mix(h, (__u64)w->nwords << 24 | (__u64)w->uses_bp << 16 | (__u64)w->end << 8 | w->fp_frames);
	__u32 n = w->nwords;
	for (int i = 0; i < UNWIND_WALK_WORDS && i < n; i++) {
		h = unwind_mix(h, (__u32)w->off[i]);
		h = unwind_mix(h, w->val[i]);
	}
	return h;
}

// unwind_replay tells whether the walk w, started at the same pc, rsp
// (and rbp, when it used it) in the same process and program image, with
// the same mapping lists and stored stacks (the caller checks those),
// found the same values in the stack words it depended on: then this
// walk would take the same steps to the same frames, and w's stack is
// this one. Comparing the words (read from the window, which the walk
// would have read anyway) replaces the mapping list's lookup, the row
// lookups, the frames' hash and the interning. A global function.
__attribute__((noinline)) int unwind_replay(struct unwind_state *s, struct unwind_scratch *sc,
					    struct unwind_walk *w)
{
	if (!s || !sc || !w)
		return 0;
	if (!w->stack_id || w->pc != s->pc || w->sp != s->sp || (w->uses_bp && w->bp != s->bp) ||
	    w->check != unwind_walk_sum(w))
		return 0;
	__u32 n = w->nwords;
	for (int i = 0; i < UNWIND_WALK_WORDS && i < n; i++) {
		__u64 v;
		if (unwind_read(s, sc, &v, s->sp + w->off[i]) || v != w->val[i])
			return 0;
	}
	return 1;
}

// fp_stack is bpf_get_stack's frame-pointer walk. At an exit site its
// first frame is the allocator's own instruction, and %rbp is already the
// caller's, so the caller's frame is missing: frame 0 becomes the call
// site, the return address at [rsp], and the stack reads as after the
// return.
static __always_inline long fp_stack(struct pt_regs *ctx, struct stack *st, __u64 ra, int at_exit)
{
	long n = bpf_get_stack(ctx, st->pcs, sizeof(st->pcs), BPF_F_USER_STACK);
	if (n > 0 && at_exit)
		st->pcs[0] = ra;
	return n;
}

// unwind_user_stack stores the stack of the current thread, innermost
// first, in st->pcs (st is stack_scratch's entry) and returns its size in
// bytes, like bpf_get_stack (which it is in fp mode, and for processes
// without tables). at_exit: the program runs at an exit site of the
// allocator (a ret or a tail jump, exits.go), where [rsp] is the return
// address; the walk starts from the state the return leads to. t is the
// current process's target, tgid its id. A stack the walk cache knows is
// not stored again: *id is its id (and 0 returned). *walk names the
// walk taken, for unwind_remember once its stack is stored. *start is
// where the walk began, and start->late says the stack is to be walked
// again by the loader (unwind_unknown).
static __always_inline long unwind_user_stack(struct pt_regs *ctx, struct stack *st,
					      struct target *t, __u32 tgid, int at_exit,
					      __u64 *id, __u64 *walk, struct unwind_start *start)
{
	__u64 ra = 0, sp = PT_REGS_SP(ctx);
	struct unwind_state s = {
		.bp = PT_REGS_FP(ctx),
		// At the allocator's return probe ip is the return address into
		// the caller; at an entry probe it would be the callee's first
		// instruction.
		.is_return = 1,
		.sp = sp,
	};
	__u32 zero = 0, one = 1;
	struct unwind_scratch *sc = NULL;
	struct unwind_walks *walks = NULL;
	__u32 *stacks_epoch = NULL, *mappings_epoch = NULL;
	if (unwind_mode != UNWIND_MODE_FP) {
		sc = bpf_map_lookup_elem(&unwind_scratch, &zero);
		walks = bpf_map_lookup_elem(&unwind_walks, &zero);
		stacks_epoch = bpf_map_lookup_elem(&unwind_epochs, &zero);
		mappings_epoch = bpf_map_lookup_elem(&unwind_epochs, &one);
	}
	if (at_exit) {
		// The return address, through the window the walk starts with.
		if (sc ? unwind_read(&s, sc, &ra, sp) : bpf_probe_read_user(&ra, sizeof(ra), (void *)sp))
			return 0;
		sp += 8;
	}
	if (!sc || !walks || !stacks_epoch || !mappings_epoch)
		return fp_stack(ctx, st, at_exit ? unwind_real_return(&s, ra) : 0, at_exit);
	// Both counts before the mapping list is looked up and the stack
	// found or stored (enum unwind_epoch).
	__u32 se = *stacks_epoch, me = *mappings_epoch;
	s.pc = at_exit ? ra : PT_REGS_IP(ctx);
	s.sp = sp;
	start->pc = s.pc;
	start->sp = sp;
	start->bp = s.bp;
	// This use of the scratch's window: another on this CPU before the
	// walk ends (a preempting task's) changes the number.
	__u32 seq = ++sc->seq;
	__u32 slot = (((s.pc ^ (sp << 16) ^ tgid) * 0x9e3779b97f4a7c15ULL) >> (64 - UNWIND_WALK_BITS)) &
		     (UNWIND_WALK_SLOTS - 1);
	struct unwind_walk *w = &walks->w[slot];
	if (w->tgid == tgid && w->generation == t->generation && w->stacks_epoch == se &&
	    w->mappings_epoch == me && unwind_replay(&s, sc, w)) {
		unwind_count(UNWIND_COUNTER_STACKS);
		unwind_count(UNWIND_COUNTER_REPLAYS);
		unwind_count(w->end);
		if (w->fp_frames) {
			enum unwind_counter fp = UNWIND_COUNTER_FP_FRAMES;
			__u64 *c = bpf_map_lookup_elem(&unwind_counters, &fp);
			if (c)
				*c += w->fp_frames;
		}
		*id = w->stack_id;
		return 0;
	}
	struct unwind_mappings *maps = bpf_map_lookup_elem(&unwind_procs, &tgid);
	if (!maps) {
		unwind_count(UNWIND_COUNTER_NO_PROCESS);
		return fp_stack(ctx, st, at_exit ? unwind_real_return(&s, ra) : 0, at_exit);
	}
	if (t->generation != maps->generation) {
		// The process exec'd and the loader has not read its new
		// mappings yet: the old image's rows would give junk. The call
		// site (ip at the return probe) is still exact.
		st->pcs[0] = at_exit ? unwind_real_return(&s, ra) : PT_REGS_IP(ctx);
		st->pcs[1] = UNWIND_MARK_STALE;
		unwind_count(UNWIND_COUNTER_STALE);
		start->late = 1;
		return 2 * sizeof(__u64);
	}
	unwind_count(UNWIND_COUNTER_STACKS);
	// Walk, and record the walk in w (unwind_remember completes it).
	w->stack_id = 0;
	w->seq = seq;
	w->stacks_epoch = se;
	w->mappings_epoch = me;
	w->pc = s.pc;
	w->sp = sp;
	w->bp = s.bp;
	w->tgid = tgid;
	w->generation = t->generation;
	w->uses_bp = 0;
	s.sp0 = sp;
	s.rec_ok = 1;
	s.list_stale = maps->maps_seq != t->maps_seq;
	unwind_walk(&s, maps, st, sc, w);
	start->late = s.late;
	// A walk whose window another used meanwhile may have read its words:
	// not kept.
	if (s.rec_ok && sc->seq == seq) {
		w->nwords = s.rec_n;
		w->end = s.end;
		w->fp_frames = s.fp_frames;
		*walk = (__u64)seq << 32 | slot;
	}
	return (long)s.n * sizeof(__u64);
}

// unwind_remember keeps the walk unwind_user_stack took (walk: its seq
// and slot; 0: none to keep) in the walk cache, now that its stack is
// stored as id, unless another walk took the slot since.
static __always_inline void unwind_remember(__u64 walk, __u64 id)
{
	__u32 zero = 0;
	struct unwind_walks *walks = bpf_map_lookup_elem(&unwind_walks, &zero);
	if (!walk || !walks)
		return;
	struct unwind_walk *w = &walks->w[walk & (UNWIND_WALK_SLOTS - 1)];
	if (w->seq != walk >> 32)
		return;
	w->stack_id = id;
	w->check = unwind_walk_sum(w);
}

#else

static __always_inline long unwind_user_stack(struct pt_regs *ctx, struct stack *st,
					      struct target *t, __u32 tgid, int at_exit,
					      __u64 *id, __u64 *walk, struct unwind_start *start)
{
	// CFI rows are compiled for x86-64 only; arm64 keeps frame pointers
	// in its ABI's common builds (and has no exit sites).
	return bpf_get_stack(ctx, st->pcs, sizeof(st->pcs), BPF_F_USER_STACK);
}

static __always_inline void unwind_remember(__u64 walk, __u64 id)
{
}

#endif

#endif
