package session

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lsan-project/lsan/bpf"
)

func TestLossWatcherSpeaksOncePerCause(t *testing.T) {
	var lines []string
	s := &Session{cfg: Config{Log: func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }}}
	w := &lossWatcher{s: s, capacity: 100, said: map[string]time.Time{}}
	t0 := time.Unix(1000, 0)
	w.look(bpf.Counters{Allocs: 10}, t0)
	if len(lines) != 0 {
		t.Fatalf("spoke without losses: %q", lines)
	}
	w.look(bpf.Counters{Allocs: 10, AllocsDropped: 5, StacksDropped: 2}, t0.Add(time.Second))
	w.look(bpf.Counters{Allocs: 10, AllocsDropped: 9, StacksDropped: 2}, t0.Add(2*time.Second))
	w.look(bpf.Counters{Allocs: 10, AllocsDropped: 12, StacksDropped: 2}, t0.Add(12*time.Second))
	want := []string{
		"lsan: warning: 5 allocation(s) not recorded: the block map is full (100 blocks; raise --max-blocks) since attach; leak checks from now on rest on incomplete data",
		"lsan: warning: 2 allocation stack(s) not stored: the stack map is full (raise --max-stacks) since attach; some reported stacks will be short",
		"lsan: warning: 12 allocation(s) not recorded: the block map is full (100 blocks; raise --max-blocks) since attach; leak checks from now on rest on incomplete data",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("said:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestLossWatcherWarnsBeforeTheMapFills(t *testing.T) {
	var lines []string
	s := &Session{cfg: Config{Log: func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }}}
	w := &lossWatcher{s: s, capacity: 1000, said: map[string]time.Time{}}
	now := time.Unix(1000, 0)
	w.look(bpf.Counters{Allocs: 900, Frees: 150}, now)  // 750: nothing
	w.look(bpf.Counters{Allocs: 1000, Frees: 150}, now) // 850: 80%
	w.look(bpf.Counters{Allocs: 1100, Frees: 150}, now) // 950: 95%
	w.look(bpf.Counters{Allocs: 1100, Frees: 140}, now) // still 95%: said already
	want := []string{
		"lsan: warning: the block map is 80% full (850 of 1000 blocks); beyond it allocations are dropped and checks become incomplete: restart with --max-blocks 2000",
		"lsan: warning: the block map is 95% full (950 of 1000 blocks); beyond it allocations are dropped and checks become incomplete: restart with --max-blocks 2000",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("said:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestSizeBlocksFor(t *testing.T) {
	for _, tc := range []struct {
		anon uint64
		want uint32
	}{
		{0, 1 << 20},
		{10 << 20, 1 << 20},    // 10 MiB: the floor
		{40 << 20, 1 << 21},    // 40 MiB: 1310720 -> 2097152
		{1 << 30, 1 << 24},     // 1 GiB: 33554432 -> capped
		{100 << 30, 1 << 24},   // capped
		{32<<20 + 64, 1 << 21}, // just over 32 MiB: 1048578 -> 2097152
	} {
		if got := bpf.SizeBlocksFor(tc.anon); got != tc.want {
			t.Errorf("SizeBlocksFor(%d) = %d, want %d", tc.anon, got, tc.want)
		}
	}
}
