// The memory lsan shares with the in-process recorder (lsan_inproc.c).
// inproc/layout.go mirrors every constant and offset here; TestLayout
// compiles a probe of this header and compares.
#ifndef LSAN_INPROC_LAYOUT_H
#define LSAN_INPROC_LAYOUT_H

#include <stdint.h>

#define LSAN_INPROC_MAGIC 0x31504e494e41534cULL // "LSANINP1"
#define LSAN_INPROC_VERSION 4

// Rings: a thread claims one of the first OWNED_RINGS for itself (ring.owner)
// and reserves its slots with a plain add; a thread that finds none free,
// and a record made while its thread holds a slot (a signal handler's),
// write to the shared rings after them, reserving with an atomic add. lsan
// drains them all.
#define RINGS 64
#define OWNED_RINGS 48
#define RING_SLOTS 65536 // a power of two

// Stacks: an open-addressing table, deduplicated by hash.
#define STACK_SLOTS (1 << 16)
#define MAX_DEPTH 64 // the BPF tracer's MAX_STACK_DEPTH

// Generations: events on one address are ordered by a counter per address
// hash, taken with an atomic add after an allocation is obtained and before
// a free releases it (so a free always holds a lower number than the
// allocation that gets its block next, whatever the threads and rings).
#define GEN_SLOTS (1 << 16)

// Unwind rows: the BPF unwinder's format (bpf/unwind.h), mirrored here by
// lsan whenever it loads them into the BPF maps.
#define PROC_SLOTS 64
#define MAX_MAPPINGS 256
#define MAX_ROWS (1 << 22)

enum rec_kind {
	REC_ALLOC = 1,
	REC_FREE = 2,
	REC_START = 3, // a program image started recording (its blocks before are gone)
	REC_EXIT = 4,  // the process is exiting: check it (header.lifecycle)
	REC_MAPS = 5,  // dlopen mapped code: load its rows (header.lifecycle)
	REC_RETRACTED = 6, // an allocation whose block its thread freed before lsan read it: nothing
	REC_WRITING = 7,   // a retracted slot its thread is writing again (see REC_CLAIMED)
};

// The last record of an owned ring, when it is an allocation, can be taken
// back by its thread when it frees that block next (no record, no
// generation: the pair never happened for lsan). Both sides compare and
// swap the word holding kind, fn and claimed: the thread turns REC_ALLOC into
// REC_RETRACTED, lsan sets claimed to REC_CLAIMED before it applies such a
// record; whichever comes first wins. A retracted last slot is written
// again by its thread's next allocation (REC_RETRACTED to REC_WRITING, then
// REC_ALLOC, seq unchanged) unless lsan claimed it first: a loop of
// temporary blocks keeps writing one slot, which stays in its CPU's cache.
#define REC_CLAIMED 1

// One event: 48 bytes. seq is written last (release): the slot's ring
// position + 1 once the record is complete.
struct rec {
	uint32_t seq;
	uint8_t kind;
	uint8_t fn; // index in the shim's function table (fn_names)
	uint16_t claimed; // REC_CLAIMED: lsan read it (it can no longer be retracted)
	uint32_t pid, tid;
	uint32_t stack; // stack slot + 1; 0: none
	uint32_t gen;   // the address's generation (GEN_SLOTS)
	uint64_t addr, size;
	uint32_t time;  // header.epoch_ms when written: an age, good to a drain pass
	uint32_t image; // the program image that wrote it (header.images when it started)
};

struct ring {
	uint64_t reserve; // next position to hand out
	uint64_t owner;   // owned rings: the thread writing it (pid << 32 | tid), 0: none
	uint64_t reused;  // retracted records written over (reuse_slot): pairs lsan never reads
	uint64_t _pad[5];
	uint64_t consumed; // lsan: positions before this are read
	uint64_t _pad2[7];
	struct rec slots[RING_SLOTS];
};

// state: 0 empty, 1 being written, else the stack's hash | 1<<63 (never 0 or 1).
struct stack_entry {
	uint64_t state;
	uint32_t pid, depth;
	uint64_t pcs[MAX_DEPTH];
};

struct unwind_row {
	uint32_t pc;
	uint16_t cfa_offset;
	uint8_t kind;
	int8_t rbp_offset8;
};

struct unwind_mapping {
	uint64_t start, end, bias;
	uint32_t first_row, nrows;
};

// A process's executable mappings. seq is odd while lsan rewrites them.
struct proc_maps {
	uint32_t pid;
	uint32_t seq;
	uint32_t n;
	uint32_t _pad;
	struct unwind_mapping m[MAX_MAPPINGS];
};

enum counter {
	C_LOST = 1,       // records not written: recording stopped (header.disabled)
	C_STACKS_FULL = 2,// stacks not stored: table full
	C_WAITS = 5,      // times a thread waited for room in its ring
	C_COUNTERS = 16,
};

// Fields lsan or the threads write often sit on cache lines of their own:
// every record reads the configuration, and a line written by another CPU
// would have to travel on each read.
struct header {
	uint64_t magic;
	uint32_t version, rings;
	uint32_t ring_slots, rec_size;
	uint32_t stack_slots, max_depth;
	uint64_t rings_off, stacks_off, procs_off, rows_off;
	uint32_t max_rows, proc_slots;
	uint32_t unwind_mode; // 0 fp, 1 auto, 2 cfi (bpf/unwind.h)
	uint32_t _pad0;
	uint64_t dead_after;  // a heartbeat older than this (ns): lsan is gone
	uint32_t procs_gen;   // lsan: bumped when a process gets a mapping slot
	uint32_t images;      // program images started: each takes the next number
	uint8_t _line1[256 - 96];
	uint64_t heartbeat; // lsan: CLOCK_MONOTONIC at its last drain
	uint64_t epoch_ms;  // lsan: milliseconds from its start to its last drain (rec.time)
	uint8_t _line2[256 - 16];
	uint64_t disabled; // a thread took lsan for dead: recording stopped
	uint8_t _line3[256 - 8];
	uint64_t counters[C_COUNTERS];
	uint8_t _line4[256 - 8 * C_COUNTERS];
	// With lifecycle set, the library itself tells lsan of the process's
	// exit and new code (no BPF program does): it writes REC_EXIT or
	// REC_MAPS (REC_START too), bumps urgent, and waits for lsan to bump
	// exit_done or maps_done (futex words).
	uint32_t lifecycle;
	uint32_t urgent;
	uint8_t _line5[256 - 8];
	uint32_t maps_done;
	uint8_t _line6[256 - 4];
	uint32_t exit_done;
};

#define HEADER_SIZE 4096
#define RINGS_OFF HEADER_SIZE
#define STACKS_OFF (RINGS_OFF + (uint64_t)RINGS * sizeof(struct ring))
#define PROCS_OFF (STACKS_OFF + (uint64_t)STACK_SLOTS * sizeof(struct stack_entry))
#define ROWS_OFF (PROCS_OFF + (uint64_t)PROC_SLOTS * sizeof(struct proc_maps))
#define GENS_OFF (ROWS_OFF + (uint64_t)MAX_ROWS * sizeof(struct unwind_row))
#define SHARED_SIZE (GENS_OFF + (uint64_t)GEN_SLOTS * sizeof(uint32_t))

#endif
