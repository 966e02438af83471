package inproc

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLayout compiles a probe of shim/layout.h and compares every size
// and offset with the Go side's constants.
func TestLayout(t *testing.T) {
	probe := `#include <stddef.h>
#include <stdio.h>
#include "layout.h"
#define P(name, v) printf("%s %llu\n", name, (unsigned long long)(v))
int main(void) {
	P("ringSize", sizeof(struct ring));
	P("ringConsumed", offsetof(struct ring, consumed));
	P("ringOwner", offsetof(struct ring, owner));
	P("ringReused", offsetof(struct ring, reused));
	P("rClaimed", offsetof(struct rec, claimed));
	P("ownedRings", OWNED_RINGS);
	P("recRetracted", REC_RETRACTED);
	P("recWriting", REC_WRITING);
	P("recClaimed", REC_CLAIMED);
	P("ringHeader", offsetof(struct ring, slots));
	P("recSize", sizeof(struct rec));
	P("rKind", offsetof(struct rec, kind));
	P("rFn", offsetof(struct rec, fn));
	P("rPID", offsetof(struct rec, pid));
	P("rTID", offsetof(struct rec, tid));
	P("rStack", offsetof(struct rec, stack));
	P("rAddr", offsetof(struct rec, addr));
	P("rSize", offsetof(struct rec, size));
	P("rTime", offsetof(struct rec, time));
	P("rImage", offsetof(struct rec, image));
	P("rGen", offsetof(struct rec, gen));
	P("hImages", offsetof(struct header, images));
	P("hEpochMS", offsetof(struct header, epoch_ms));
	P("gensOff", GENS_OFF);
	P("stackSize", sizeof(struct stack_entry));
	P("procMapsSize", sizeof(struct proc_maps));
	P("mappingSize", sizeof(struct unwind_mapping));
	P("rowSize", sizeof(struct unwind_row));
	P("hHeartbeat", offsetof(struct header, heartbeat));
	P("hUnwindMode", offsetof(struct header, unwind_mode));
	P("hProcsGen", offsetof(struct header, procs_gen));
	P("hDeadAfter", offsetof(struct header, dead_after));
	P("hCounters", offsetof(struct header, counters));
	P("hMaxRows", offsetof(struct header, max_rows));
	P("hDisabled", offsetof(struct header, disabled));
	P("hLifecycle", offsetof(struct header, lifecycle));
	P("hUrgent", offsetof(struct header, urgent));
	P("hMapsDone", offsetof(struct header, maps_done));
	P("hExitDone", offsetof(struct header, exit_done));
	P("hProcSlots", offsetof(struct header, proc_slots));
	P("stacksOff", STACKS_OFF);
	P("procsOff", PROCS_OFF);
	P("rowsOff", ROWS_OFF);
	P("sharedSize", SHARED_SIZE);
	return 0;
}`
	dir := t.TempDir()
	src := filepath.Join(dir, "probe.c")
	if err := writeFile(src, probe); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "probe")
	if out, err := exec.Command("cc", "-I", "shim", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{
		"ringSize": ringSize, "ringConsumed": ringConsumed, "ringOwner": ringOwner, "ringReused": ringReused, "rClaimed": rClaimed, "ownedRings": ownedRings,
		"recRetracted": recRetracted, "recWriting": recWriting, "recClaimed": recClaimed, "ringHeader": ringHeader, "recSize": recSize,
		"rKind": rKind, "rFn": rFn, "rPID": rPID, "rTID": rTID, "rStack": rStack, "rAddr": rAddr,
		"rSize": rSize, "rTime": rTime, "rImage": rImage, "rGen": rGen, "hImages": hImages, "hEpochMS": hEpochMS, "gensOff": gensOff, "stackSize": stackSize, "procMapsSize": procMapsSize,
		"mappingSize": mappingSize, "rowSize": rowSize, "hHeartbeat": hHeartbeat, "hUnwindMode": hUnwindMode, "hProcsGen": hProcsGen, "hDeadAfter": hDeadAfter,
		"hCounters": hCounters, "hDisabled": hDisabled, "hLifecycle": hLifecycle, "hUrgent": hUrgent, "hMapsDone": hMapsDone, "hExitDone": hExitDone, "hMaxRows": hMaxRows, "hProcSlots": hProcSlots,
		"stacksOff": stacksOff, "procsOff": procsOff, "rowsOff": rowsOff, "sharedSize": sharedSize,
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, v, _ := strings.Cut(line, " ")
		got, _ := strconv.ParseUint(v, 10, 64)
		if got != want[name] {
			t.Errorf("%s: C says %d, Go %d", name, got, want[name])
		}
		delete(want, name)
	}
	if len(want) > 0 {
		t.Errorf("not probed: %v", want)
	}
}

// TestFuncNames: the Go table is the one the embedded library exports.
func TestFuncNames(t *testing.T) {
	offs, err := funcOffsets()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range fnNames {
		if offs[n] == 0 {
			t.Errorf("the shim exports no %s", n)
		}
	}
	names, err := exportedNames()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(names, ","), strings.Join(fnNames, ","); got != want {
		t.Errorf("lsan_inproc_fn_names:\n%s\nwant\n%s", got, want)
	}
}

func writeFile(path, text string) error { return os.WriteFile(path, []byte(text), 0o644) }

// exportedNames reads lsan_inproc_fn_names from the embedded library.
func exportedNames() ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(libraryX86))
	if err != nil {
		return nil, err
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		return nil, err
	}
	for _, s := range syms {
		if s.Name != "lsan_inproc_fn_names" {
			continue
		}
		sec := f.Sections[s.Section]
		data, err := sec.Data()
		if err != nil {
			return nil, err
		}
		raw := data[s.Value-sec.Addr : s.Value-sec.Addr+s.Size]
		return strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"), nil
	}
	return nil, fmt.Errorf("no lsan_inproc_fn_names")
}

// TestShimUpToDate: the committed library is what shim/ builds (make
// inproc), so that the embedded one is never older than its source.
func TestShimUpToDate(t *testing.T) {
	out := filepath.Join(t.TempDir(), "shim.so")
	cmd := exec.Command("make", "-s", "-B", "-C", "shim", "OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make: %v\n%s", err, b)
	}
	built, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(built, libraryX86) {
		t.Errorf("liblsan-inproc-x86_64.so is not what shim/ builds: run make inproc and commit it")
	}
}
