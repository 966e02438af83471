package scanner

import (
	"math/rand/v2"
	"testing"
)

// syntheticIndex builds an index of n blocks of `size` bytes, 16 bytes
// apart (as glibc lays them out), and random words pointing into them.
func syntheticIndex(n int, size uint64, words int) (*blockIndex, []uint64) {
	const base = 0x5555_0000_0000
	x := newSortedIndex(n, func(i int) uint64 { return base + uint64(i)*(size+16) })
	for k := 0; k < n; k++ {
		x.setSizes(k, size, size, true)
	}
	x.finish()
	r := rand.New(rand.NewPCG(1, 2))
	ws := make([]uint64, words)
	for i := range ws {
		ws[i] = base + uint64(r.IntN(n))*(size+16) + uint64(r.IntN(int(size)))&^7
	}
	return x, ws
}

func BenchmarkResolve(b *testing.B) {
	x, ws := syntheticIndex(1<<20, 1024, 1<<19)
	out := make([]int32, len(ws))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x.resolveBatch(ws, out)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ws)), "ns/word")
}
