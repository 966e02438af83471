package scanner

import (
	"math/rand/v2"
	"os"
	"testing"
)

// glibcLikeBlocks returns n blocks of size bytes laid out as glibc's heap
// chunks tile an arena (one chunk right after the other), in address
// order or shuffled (a BPF hash map hands them out in no order).
// With usable, it also returns their usable sizes (Snapshot.Usable).
func glibcLikeBlocks(n int, size uint64, shuffled, usable bool) ([]Block, []uint64) {
	const base = 0x5555_0000_0010
	chunk := glibcChunkFromRequest(size)
	bs := make([]Block, n)
	for i := range bs {
		bs[i] = Block{Addr: base + uint64(i)*chunk, Size: size}
	}
	if shuffled {
		r := rand.New(rand.NewPCG(3, 4))
		r.Shuffle(n, func(i, j int) { bs[i], bs[j] = bs[j], bs[i] })
	}
	if !usable {
		return bs, nil
	}
	us := make([]uint64, n)
	for i := range us {
		us[i] = chunk - glibcSizeSz
	}
	return bs, us
}

// BenchmarkBuildIndex measures the index phase alone (sort, sizes,
// granule table) for 1M blocks of 1 KiB. The chunk headers it cannot
// infer are read from this process, where they are unmapped: harmless.
func BenchmarkBuildIndex(b *testing.B) {
	for _, tc := range []struct {
		name             string
		shuffled, usable bool
	}{
		{"sorted", false, false},
		{"shuffled", true, false},
		{"shuffled+usable", true, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			blocks, usable := glibcLikeBlocks(1<<20, 1024, tc.shuffled, tc.usable)
			rd, err := newProcessReader(os.Getpid(), false)
			if err != nil {
				b.Fatal(err)
			}
			defer rd.close()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				x, _, err := buildIndex(blocks, usable, Options{Allocator: Glibc}, rd)
				if err != nil {
					b.Fatal(err)
				}
				x.release()
			}
		})
	}
}
