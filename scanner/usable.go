package scanner

import "math/bits"

// glibc (ptmalloc2, x86-64) chunk layout: the 8 bytes before the pointer
// malloc returns hold the chunk size with three flag bits.
const (
	glibcSizeSz      = 8   // SIZE_SZ
	glibcMinChunk    = 32  // MINSIZE
	glibcAlign       = 16  // MALLOC_ALIGNMENT
	glibcPrevInuse   = 0x1 // PREV_INUSE
	glibcIsMmapped   = 0x2 // IS_MMAPPED
	glibcNonMain     = 0x4 // NON_MAIN_ARENA
	glibcFlagBits    = glibcPrevInuse | glibcIsMmapped | glibcNonMain
	glibcMaxSlack    = 1024    // largest believable slack of a heap chunk
	glibcMaxMmapSlck = 1 << 20 // largest believable slack of an mmapped chunk (alignment included)
	pageSize         = 4096
)

// glibcChunk is what a chunk header says about a block.
type glibcChunk struct {
	usable  uint64
	mmapped bool
}

// decodeGlibcHeader turns the size word of a chunk header into the usable
// size, as malloc_usable_size computes it: the chunk size minus the header
// (8 bytes for a heap chunk, whose next chunk's prev_size field is usable
// space; 16 for an mmapped chunk, which has no next chunk). ok is false
// when the header cannot belong to a live block of the requested size.
func decodeGlibcHeader(hdr, requested uint64) (glibcChunk, bool) {
	size := hdr &^ glibcFlagBits
	mmapped := hdr&glibcIsMmapped != 0
	if size < glibcMinChunk || size%glibcAlign != 0 {
		return glibcChunk{}, false
	}
	c := glibcChunk{mmapped: mmapped}
	if mmapped {
		if size%pageSize != 0 || hdr&glibcNonMain != 0 {
			return glibcChunk{}, false
		}
		c.usable = size - 2*glibcSizeSz
	} else {
		c.usable = size - glibcSizeSz
	}
	if c.usable < requested {
		return glibcChunk{}, false
	}
	slack := c.usable - requested
	if (!mmapped && slack > glibcMaxSlack) || (mmapped && slack > glibcMaxMmapSlck) {
		return glibcChunk{}, false
	}
	return c, true
}

// glibcUsableFromRequest is the usable size malloc gives a request served
// from the heap: the fallback when the header cannot be read or trusted.
func glibcUsableFromRequest(requested uint64) uint64 {
	return glibcChunkFromRequest(requested) - glibcSizeSz
}

// glibcMaxRequest: larger requests fail in malloc (and would overflow the
// rounding below).
const glibcMaxRequest = 1 << 62

// glibcChunkFromRequest is the smallest chunk malloc carves for a request
// (request2size): the request plus the size field, rounded up to 16, at
// least 32 bytes.
func glibcChunkFromRequest(requested uint64) uint64 {
	chunk := (requested + glibcSizeSz + glibcAlign - 1) &^ (glibcAlign - 1)
	return max(chunk, glibcMinChunk)
}

// jemalloc 5.3 on x86-64: LG_QUANTUM=4, LG_PAGE=12, SC_LG_NGROUP=2, one
// tiny class (8), then four classes per doubling.
const (
	jeLgQuantum      = 4
	jeLgNGroup       = 2
	jeTinyMax        = 8
	jeLargeMaxClass  = uint64(1) << 62 // SC_LARGE_MAXCLASS is below this; beyond it, no class
	jeMinLgDeltaBase = jeLgNGroup + jeLgQuantum + 1
)

// jemallocUsable is the size class a request falls into (sz_s2u): what
// malloc_usable_size returns under jemalloc 5.3.
func jemallocUsable(requested uint64) uint64 {
	size := requested
	if size == 0 {
		size = 1 // malloc(0) allocates the smallest class
	}
	if size <= jeTinyMax {
		return jeTinyMax
	}
	if size > jeLargeMaxClass {
		return roundUp(size, pageSize)
	}
	// x = ceil(log2(size)); classes between 2^(x-1) and 2^x are spaced
	// 2^(x-1-LG_NGROUP) apart, but never closer than the quantum.
	x := uint(bits.Len64((size<<1)-1) - 1)
	lgDelta := uint(jeLgQuantum)
	if x >= jeMinLgDeltaBase {
		lgDelta = x - jeLgNGroup - 1
	}
	return roundUp(size, uint64(1)<<lgDelta)
}

// unknownUsable is the usable size when the allocator is not known: the
// request rounded up to the 16-byte malloc alignment.
func unknownUsable(requested uint64) uint64 {
	if requested == 0 {
		requested = 1
	}
	return roundUp(requested, 16)
}

func roundUp(n, align uint64) uint64 {
	return (n + align - 1) &^ (align - 1)
}
