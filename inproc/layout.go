package inproc

// The shared memory's layout: shim/layout.h, constant for constant.
// TestLayout compiles a C probe of the header and compares every offset.
const (
	magic   = 0x31504e494e41534c // "LSANINP1"
	version = 4

	rings      = 64
	ownedRings = 48 // rings a thread can claim for itself (ring.owner); the rest are shared
	ringSlots  = 65536
	recSize    = 48
	// ringHeader: reserve and consumed, each on its own cache line.
	ringHeader   = 128
	ringSize     = ringHeader + ringSlots*recSize
	ringReserve  = 0
	ringOwner    = 8
	ringReused   = 16
	ringConsumed = 64

	stackSlots = 1 << 16
	maxDepth   = 64
	stackSize  = 16 + maxDepth*8

	procSlots    = 64
	maxMappings  = 256
	mappingSize  = 32
	procMapsSize = 16 + maxMappings*mappingSize

	maxRows = 1 << 22
	rowSize = 8

	genSlots = 1 << 16

	headerSize = 4096
	ringsOff   = headerSize
	stacksOff  = ringsOff + rings*ringSize
	procsOff   = stacksOff + stackSlots*stackSize
	rowsOff    = procsOff + procSlots*procMapsSize
	gensOff    = rowsOff + maxRows*rowSize
	sharedSize = gensOff + genSlots*4
)

// Header field offsets (struct header).
const (
	hMagic      = 0
	hVersion    = 8
	hRings      = 12
	hRingSlots  = 16
	hRecSize    = 20
	hStackSlots = 24
	hMaxDepth   = 28
	hRingsOff   = 32
	hStacksOff  = 40
	hProcsOff   = 48
	hRowsOff    = 56
	hMaxRows    = 64
	hProcSlots  = 68
	hUnwindMode = 72
	hDeadAfter  = 80
	hProcsGen   = 88
	hImages     = 92
	hHeartbeat  = 256
	hEpochMS    = 264
	hDisabled   = 512
	hCounters   = 768
	hLifecycle  = 1024
	hUrgent     = 1028
	hMapsDone   = 1280
	hExitDone   = 1536
)

// Record field offsets (struct rec).
const (
	rSeq  = 0
	rKind = 4
	rFn   = 5
	// rClaimed: lsan sets recClaimed there (compare-and-swap of the
	// 32-bit word at rKind) before it applies the last allocation of a
	// ring, which its thread could otherwise retract.
	rClaimed = 6
	rPID     = 8
	rTID     = 12
	rStack   = 16
	rGen     = 20
	rAddr    = 24
	rSize    = 32
	rTime    = 40
	rImage   = 44
)

// Record kinds (enum rec_kind).
const (
	recAlloc = 1
	recFree  = 2
	recStart = 3
	recExit  = 4
	recMaps  = 5
	// recRetracted: an allocation its thread took back when it freed the
	// block before lsan read the record: the pair is nothing.
	recRetracted = 6
	// recWriting: a retracted last slot its thread is writing again: not
	// published until it turns into recAlloc.
	recWriting = 7

	recClaimed = 1
)

// Counters the shim keeps (enum counter).
const (
	cLost       = 1
	cStacksFull = 2
	cWaits      = 5
)

// fnNames is the shim's function table (lsan_inproc_fn_names): a
// record's fn indexes it.
var fnNames = []string{
	"malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign",
	"aligned_alloc", "memalign", "valloc", "pvalloc",
	"_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
	"_ZnwmSt11align_val_t", "_ZnamSt11align_val_t", "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
	"_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm",
	"_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t", "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
	"_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t", "_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
	"cfree", "strdup", "strndup",
}
