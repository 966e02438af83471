package session

import (
	"reflect"
	"testing"

	"github.com/lsan-project/lsan/bpf"
	"github.com/lsan-project/lsan/scanner"
)

// TestForkSnapshotRanges: with a fork at t=100, blocks born after it are
// not in the copy, ranges freed after it are still live there, and both
// are memory handed out again, which an earlier free must not hide.
func TestForkSnapshotRanges(t *testing.T) {
	blocks := []bpf.Block{
		{Addr: 0x1000, Size: 32, TimestampNS: 90},
		{Addr: 0x2000, Size: 0, TimestampNS: 110}, // malloc(0): one byte
		{Addr: 0x3000, Size: 64, TimestampNS: 100},
	}
	freed := []bpf.FreedRange{
		{Addr: 0x4000, Size: 160, TimeNS: 50},
		{Addr: 0x5000, Size: 48, TimeNS: 120},
	}
	if got, want := reusedSince(freed, 100), []scanner.Range{{Addr: 0x5000, Size: 48}}; !reflect.DeepEqual(got, want) {
		t.Errorf("reusedSince = %+v, want %+v", got, want)
	}
	// readTracked hands the blocks not born by the fork over as reused.
	if got, want := blockRange(blocks[1]), (scanner.Range{Addr: 0x2000, Size: 1}); got != want {
		t.Errorf("blockRange = %+v, want %+v", got, want)
	}
	if got, want := toRanges(freed, 100), []scanner.Range{{Addr: 0x4000, Size: 160}}; !reflect.DeepEqual(got, want) {
		t.Errorf("toRanges = %+v, want %+v", got, want)
	}
	for i, want := range []bool{true, false, true} {
		if bornBy(blocks[i], 100) != want || !bornBy(blocks[i], 0) {
			t.Errorf("bornBy(block at %#x) = %v (100), %v (no fork), want %v and true",
				blocks[i].Addr, bornBy(blocks[i], 100), bornBy(blocks[i], 0), want)
		}
	}
	// Without a fork (stop snapshot) everything counts as it is.
	if reusedSince(freed, 0) != nil || len(toRanges(freed, 0)) != 2 {
		t.Errorf("without a fork the ranges changed")
	}
}
