package scanner

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
)

// TestSortByAddress compares the sort with sort.SliceStable on address
// sets of every shape the index meets: empty, one block, sizes around
// the thresholds where the sort changes method, a million blocks; random,
// sorted, reversed, all equal, many duplicates, one dense heap with a few
// far blocks (a single dominant bucket), and full 64-bit values.
func TestSortByAddress(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	shapes := map[string]func(i, n int) uint64{
		"random": func(i, n int) uint64 { return 0x5555_0000_0000 + r.Uint64N(1<<30)&^15 },
		"sorted": func(i, n int) uint64 { return 0x5555_0000_0000 + uint64(i)*1040 },
		"reversed": func(i, n int) uint64 {
			return 0x5555_0000_0000 + uint64(n-i)*48
		},
		"equal":      func(i, n int) uint64 { return 0x7f00_0000_1000 },
		"duplicates": func(i, n int) uint64 { return 0x5555_0000_0000 + r.Uint64N(8)*16 },
		"heap+far": func(i, n int) uint64 {
			if i%1000 == 999 {
				return 0x7f12_0000_0000 + r.Uint64N(1<<32)&^15
			}
			return 0x5555_0000_0000 + r.Uint64N(uint64(n)*64+1)&^15
		},
		"full64":      func(i, n int) uint64 { return r.Uint64() },
		"dense-dupes": func(i, n int) uint64 { return 0x1000 + r.Uint64N(uint64(n)/4+1)*8 },
	}
	sizes := []int{0, 1, 2, 3, insertionMax, insertionMax + 1, 100, localSortMax, localSortMax + 1,
		5000, parallelSplitMin - 1, parallelSplitMin, 200_000, 1 << 20}
	for name, gen := range shapes {
		for _, n := range sizes {
			if n == 1<<20 && (testing.Short() || name == "equal" || name == "sorted" || name == "reversed") {
				continue // the reference sort takes a second or more per million
			}
			t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) {
				addrs := make([]uint64, n)
				for i := range addrs {
					addrs[i] = gen(i, n)
				}
				checkSortByAddress(t, addrs)
			})
		}
	}
}

func checkSortByAddress(t *testing.T, addrs []uint64) {
	t.Helper()
	n := len(addrs)
	want := make([]int32, n)
	for i := range want {
		want[i] = int32(i)
	}
	sort.SliceStable(want, func(a, b int) bool { return addrs[want[a]] < addrs[want[b]] })
	starts := make([]uint64, n)
	orig := make([]int32, n)
	arena := &hugeArena{}
	defer arena.release()
	sortByAddress(n, func(i int) uint64 { return addrs[i] }, starts, orig, nil, arena)
	for k := range want {
		if orig[k] != want[k] || starts[k] != addrs[want[k]] {
			t.Fatalf("position %d of %d: got block %d at %#x, want block %d at %#x",
				k, n, orig[k], starts[k], want[k], addrs[want[k]])
		}
	}
}

func BenchmarkSortByAddress(b *testing.B) {
	const n = 1 << 20
	for _, shuffled := range []bool{false, true} {
		b.Run(fmt.Sprintf("shuffled=%v", shuffled), func(b *testing.B) {
			blocks, _ := glibcLikeBlocks(n, 1024, shuffled, false)
			starts := make([]uint64, n)
			orig := make([]int32, n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				arena := &hugeArena{}
				sortByAddress(n, func(i int) uint64 { return blocks[i].Addr }, starts, orig, nil, arena)
				arena.release()
			}
		})
	}
}
