package record

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/lsan-project/lsan/report"
	"github.com/lsan-project/lsan/symbolize"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

var mods = []symbolize.Module{
	{Path: "/srv/app", BuildID: "abcd", Start: 0x55000000, End: 0x55001000, Offset: 0x1000, Bias: 0x54fff000, ELF: true},
	{Path: "/lib/libc.so.6", BuildID: "ef01", Start: 0x7f000000, End: 0x7f100000, Offset: 0, Bias: 0x7f000000, ELF: true},
}

func snap(i int) *report.Report {
	return &report.Report{
		PID: 42, Time: t0.Add(time.Duration(i) * 10 * time.Second), Mode: report.ModeLeaks,
		Groups: []report.Group{
			{Kind: report.Direct, Key: 11, Bytes: uint64(64 * (i + 1)), Count: i + 1, Allocator: "malloc", PCs: []uint64{0x7f000100, 0x55000010},
				Stack: []symbolize.Frame{{PC: 0x7f000100, Function: "malloc", Module: "/lib/libc.so.6", ModuleOffset: 0x100, BuildID: "ef01"},
					{PC: 0x55000010, Function: "leak_<script>&", File: "/src/a.c", Line: 3, Column: 7, Module: "/srv/app", ModuleOffset: 0x1010}}},
			{Kind: report.Indirect, Key: 12, Bytes: 500, Count: 1, Allocator: "calloc", PCs: []uint64{0x7f000200, 0x55000020}},
		},
		Suppressed: []report.SuppressedRule{{Pattern: "leak:libfoo", Count: 2, Bytes: 20}},
		Stats:      report.Stats{Blocks: 100 + i, ScannedBytes: 4096, PausedMS: 1.5, CheckMS: 3.25, Allocs: 7, Frees: 3},
		Dropped:    report.Dropped{Allocs: 1, UnreadableBytes: 8},
		SampleRate: 2,
		Final:      i == 2,
	}
}

func writeN(t *testing.T, path string, n int, withFrames bool) {
	t.Helper()
	w, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 0; i < n; i++ {
		if err := w.Write(snap(i), mods, withFrames); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rec")
	writeN(t, path, 3, true)
	rec, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Snapshots) != 3 || rec.Ignored != 0 {
		t.Fatalf("%d snapshots, %d bytes ignored (%s)", len(rec.Snapshots), rec.Ignored, rec.Why)
	}
	for i, s := range rec.Snapshots {
		want := snap(i)
		got := s.Report
		if !got.Time.Equal(want.Time) {
			t.Errorf("snapshot %d: time %v, want %v", i, got.Time, want.Time)
		}
		got.Time = want.Time
		if !reflect.DeepEqual(got, want) {
			t.Errorf("snapshot %d:\n got %+v\nwant %+v", i, got, want)
		}
		if !reflect.DeepEqual(s.Modules, mods) {
			t.Errorf("snapshot %d modules %+v", i, s.Modules)
		}
	}
}

// Stacks and modules are stored once per process: later snapshots are
// the groups and counters only.
func TestStacksStoredOnce(t *testing.T) {
	w := &Writer{stored: map[int]map[uint64]int{}, modules: map[int][]wireModule{}}
	ws, commit := w.wire(snap(0), mods, false)
	commit()
	if len(ws.Stacks) != 2 || len(ws.Modules) != 2 {
		t.Fatalf("first snapshot: %d stacks, %d modules", len(ws.Stacks), len(ws.Modules))
	}
	ws, _ = w.wire(snap(1), mods, false)
	if len(ws.Stacks) != 0 || ws.Modules != nil {
		t.Fatalf("second snapshot: %d stacks, %d modules, want none", len(ws.Stacks), len(ws.Modules))
	}
}

// A file cut at any byte reads back every snapshot completed before the
// cut, and says how much it left.
func TestTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rec")
	writeN(t, path, 3, false)
	data, _ := os.ReadFile(path)
	ends := recordEnds(t, data)
	for cut := headerSize; cut <= len(data); cut++ {
		rec, err := Parse(data[:cut], "cut")
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		complete := 0
		for _, e := range ends {
			if e <= cut {
				complete++
			}
		}
		if len(rec.Snapshots) != complete {
			t.Fatalf("cut at %d: %d snapshots, want %d", cut, len(rec.Snapshots), complete)
		}
		atBoundary := cut == headerSize || (complete > 0 && cut == ends[complete-1])
		if atBoundary != (rec.Ignored == 0) {
			t.Fatalf("cut at %d: %d bytes ignored", cut, rec.Ignored)
		}
	}
	// A flipped bit in the last record: the first two still read.
	bad := append([]byte(nil), data...)
	bad[len(bad)-3] ^= 1
	rec, _ := Parse(bad, "bad")
	if len(rec.Snapshots) != 2 || rec.Why == "" {
		t.Errorf("corrupt last record: %d snapshots, why %q", len(rec.Snapshots), rec.Why)
	}
}

func recordEnds(t *testing.T, data []byte) []int {
	var ends []int
	off := headerSize
	for off < len(data) {
		p, why := nextRecord(data[off:])
		if why != "" {
			t.Fatal(why)
		}
		off += recordHeaderSize + len(p)
		ends = append(ends, off)
	}
	return ends
}

func TestNotARecording(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x")
	os.WriteFile(path, []byte("hello, this is not a recording"), 0o644)
	if _, err := ReadFile(path); err == nil || err.Error() != path+": not an lsan recording (no LSANREC header)" {
		t.Errorf("read: %v", err)
	}
	if _, err := Create(path); err == nil {
		t.Errorf("append to a foreign file accepted")
	}
	h := header()
	h[8] = 9
	if _, err := Parse(h, "v9"); err == nil || err.Error() != "v9: recording format version 9, this lsan reads version 1" {
		t.Errorf("version: %v", err)
	}
}

// A second run appends as another session; stack keys do not mix.
func TestAppendSessions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rec")
	writeN(t, path, 1, false)
	writeN(t, path, 2, false)
	rec, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Snapshots) != 3 || rec.Snapshots[0].Session == rec.Snapshots[1].Session {
		t.Fatalf("%d snapshots; sessions %x %x", len(rec.Snapshots), rec.Snapshots[0].Session, rec.Snapshots[1].Session)
	}
	for i, s := range rec.Snapshots {
		if len(s.Report.Groups[0].PCs) != 2 {
			t.Errorf("snapshot %d lost its stack", i)
		}
	}
}

// A writer killed with SIGKILL while appending leaves a readable file.
func TestKilledWriter(t *testing.T) {
	if path := os.Getenv("LSAN_RECORD_WRITER"); path != "" {
		w, err := Create(path)
		if err != nil {
			os.Exit(1)
		}
		for i := 0; ; i++ {
			r := snap(i % 3)
			for k := 0; k < 200; k++ { // big records: more time inside write(2)
				r.Groups = append(r.Groups, report.Group{Kind: report.Direct, Key: uint64(1000*i + k), Bytes: 1, Count: 1, PCs: []uint64{uint64(i), uint64(k)}})
			}
			w.Write(r, mods, false)
		}
	}
	path := filepath.Join(t.TempDir(), "rec")
	prev := 0
	for round := 0; round < 5; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWriter$")
		cmd.Env = append(os.Environ(), "LSAN_RECORD_WRITER="+path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it while it writes: once the file grew (the test binary may
		// take long to start on a busy machine), after a varying delay.
		before := fileSize(path)
		for deadline := time.Now().Add(30 * time.Second); fileSize(path) == before && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(round*7) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		data, _ := os.ReadFile(path)
		rec, err := Parse(data, path)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if len(rec.Snapshots) == 0 {
			t.Fatalf("round %d: nothing read back from %d bytes", round, len(data))
		}
		t.Logf("round %d: %d bytes, %d snapshots, %d bytes of torn tail", round, len(data), len(rec.Snapshots), rec.Ignored)
		if round > 0 && len(rec.Snapshots) <= prev {
			t.Fatalf("round %d: %d snapshots, no more than before (%d): appends after a torn tail lost", round, len(rec.Snapshots), prev)
		}
		prev = len(rec.Snapshots)
	}
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

func FuzzParse(f *testing.F) {
	path := filepath.Join(f.TempDir(), "rec")
	w, _ := Create(path)
	w.Write(snap(0), mods, true)
	w.Write(snap(1), mods, false)
	w.Close()
	data, _ := os.ReadFile(path)
	f.Add(data)
	f.Add(data[:40])
	f.Add(header())
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := Parse(b, "fuzz")
		if err != nil {
			return
		}
		for _, s := range rec.Snapshots {
			_ = s.Report.TotalBytes()
		}
	})
}

// A run appending to a file a killed writer left torn first cuts the
// torn tail, so its own snapshots stay readable.
func TestAppendAfterTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rec")
	writeN(t, path, 2, false)
	data, _ := os.ReadFile(path)
	ends := recordEnds(t, data)
	os.Truncate(path, int64(ends[1]-5)) // second record torn
	writeN(t, path, 1, false)
	rec, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Snapshots) != 2 || rec.Ignored != 0 {
		t.Fatalf("%d snapshots (want 2: the first run's first, the second run's), %d bytes ignored", len(rec.Snapshots), rec.Ignored)
	}
}

// BenchmarkSnapshotBytes: the steady-state size of a snapshot of 1,000
// groups (a third growing by one 16-byte object per check, the rest
// constant), stacks already stored (docs/PERFORMANCE.md).
func BenchmarkSnapshotBytes(b *testing.B) {
	w := &Writer{stored: map[int]map[uint64]int{}, modules: map[int][]wireModule{}}
	r := &report.Report{PID: 1, Time: t0, Mode: report.ModeOutstanding}
	for g := 0; g < 1000; g++ {
		r.Groups = append(r.Groups, report.Group{Kind: report.Outstanding, Key: uint64(g)*0x9e3779b97f4a7c15 + 1, Bytes: 4096, Count: 64,
			PCs: []uint64{0x7f0000001000, 0x55000000 + uint64(g)*64, 0x55001000}})
	}
	_, commit := w.wire(r, mods, false)
	commit()
	total, n := 0, 0
	for i := 0; b.Loop(); i++ {
		r.Time = r.Time.Add(10 * time.Second)
		for g := 0; g < len(r.Groups); g += 3 {
			r.Groups[g].Bytes += 16
			r.Groups[g].Count++
		}
		ws, _ := w.wire(r, mods, false)
		rec, err := encode(ws)
		if err != nil {
			b.Fatal(err)
		}
		total += len(rec)
		n++
	}
	b.ReportMetric(float64(total)/float64(n), "bytes/snapshot")
}
