package scanner

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// heapTarget runs testdata/heap.c and returns its blocks, with their
// usable sizes (as a tracer could record them at allocation time).
func heapTarget(b *testing.B, n, size, ptrs, leaked, window, stride int) (*exec.Cmd, Snapshot) {
	b.Helper()
	cmd := exec.Command(program(b, "heap"), strconv.Itoa(n), strconv.Itoa(size), strconv.Itoa(ptrs),
		strconv.Itoa(leaked), strconv.Itoa(window), strconv.Itoa(stride))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	r := bufio.NewReaderSize(stdout, 1<<20)
	line, err := r.ReadString('\n')
	if err != nil {
		b.Fatal(err)
	}
	count, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || count != n {
		b.Fatalf("heap said %q", line)
	}
	raw := make([]byte, 24*n)
	if _, err := io.ReadFull(r, raw); err != nil {
		b.Fatal(err)
	}
	snap := Snapshot{Blocks: make([]Block, n), Usable: make([]uint64, n)}
	for i := range snap.Blocks {
		snap.Blocks[i] = Block{
			Addr: binary.LittleEndian.Uint64(raw[24*i:]),
			Size: binary.LittleEndian.Uint64(raw[24*i+8:]),
		}
		snap.Usable[i] = binary.LittleEndian.Uint64(raw[24*i+16:]) // malloc_usable_size
	}
	if line, err = r.ReadString('\n'); strings.TrimSpace(line) != "ready" {
		b.Fatalf("heap said %q (%v)", line, err)
	}
	return cmd, snap
}

// Scan throughput over a 1 GiB heap: 1 Mi blocks of 1 KiB, all reachable.
// Pointer-rich: 16 pointers per block (one word in eight). "random":
// pointers to any block (the worst case for the index's caches); "local":
// pointers to one of the next 64 blocks allocated; "+usable": the tracer
// supplies the usable sizes (no chunk headers read); "sparse": 2 pointers
// per block, a data-heavy heap.
func BenchmarkScan1GiB(b *testing.B) {
	for _, tc := range []struct {
		name         string
		ptrs, window int
		usable       bool // the tracer supplies the usable sizes: no header reads
	}{
		{"random", 16, 0, false},
		{"local", 16, 64, false},
		{"random+usable", 16, 0, true},
		{"sparse", 2, 0, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cmd, snap := heapTarget(b, 1<<20, 1024, tc.ptrs, 0, tc.window, 64)
			if !tc.usable {
				snap = withoutUsable(snap)
			}
			benchCheck(b, cmd.Process.Pid, snap, Options{Allocator: Glibc})
		})
	}
}

// largeBenchmarks tells whether the benchmarks that need several GB of
// memory and minutes of setup run: LSAN_BENCH_LARGE=1.
func largeBenchmarks() bool { return os.Getenv("LSAN_BENCH_LARGE") != "" }

// How a check grows with the heap's size: blocks of 1 KiB with 16
// pointers each to random blocks (as "random" above), 64 MiB to 1 GiB;
// 4 GiB only with LSAN_BENCH_LARGE=1.
func BenchmarkScanHeapSize(b *testing.B) {
	mibs := []int{64, 256, 1024}
	if largeBenchmarks() {
		mibs = append(mibs, 4096)
	}
	for _, mib := range mibs {
		b.Run(fmt.Sprintf("heap=%dMiB", mib), func(b *testing.B) {
			cmd, snap := heapTarget(b, mib<<10, 1024, 16, 0, 0, 64)
			benchCheck(b, cmd.Process.Pid, withoutUsable(snap), Options{Allocator: Glibc})
		})
	}
}

// How a check grows with the number of tracked blocks: 64-byte blocks
// with two pointers each, 1% of them leaked. 10M blocks only with
// LSAN_BENCH_LARGE=1 (it needs ~3 GB and a minute to set up).
func BenchmarkCheckBlocks(b *testing.B) {
	sizes := []int{10_000, 100_000, 1_000_000}
	if largeBenchmarks() {
		sizes = append(sizes, 10_000_000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("blocks=%d", n), func(b *testing.B) {
			cmd, snap := heapTarget(b, n, 64, 2, n/100, 0, 64)
			benchCheck(b, cmd.Process.Pid, withoutUsable(snap), Options{Allocator: Glibc})
		})
	}
}

// A linked list of 1M nodes of 64 bytes, reachable only from its head:
// the flood learns each node from the previous one.
func BenchmarkLinkedList1M(b *testing.B) {
	cmd, snap := heapTarget(b, 1_000_000, 64, 1, 0, 0, 1<<30)
	benchCheck(b, cmd.Process.Pid, withoutUsable(snap), Options{Allocator: Glibc})
}

// withoutUsable drops the usable sizes: the scanner reads the headers.
func withoutUsable(snap Snapshot) Snapshot {
	snap.Usable = nil
	return snap
}

func benchCheck(b *testing.B, pid int, snap Snapshot, opts Options) {
	snapshot := func(uint64) (Snapshot, error) { return snap, nil }
	// One check to warm up (and fault the target's untouched pages in).
	if _, err := CheckSnapshot(pid, snapshot, opts); err != nil {
		b.Fatal(err)
	}
	heap := heapMappings(b, pid, snap.Blocks)
	copyBufs := baselineBuffers(b)
	// After the buffers' pages are in: lsan's peak counts the checks only.
	base := resetPeakRSS()
	var paused, total, copied time.Duration
	var scanned, read, copiedBytes uint64
	var last *Result
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := CheckSnapshot(pid, snapshot, opts)
		if err != nil {
			b.Fatal(err)
		}
		paused += res.Stats.Paused
		total += res.Stats.Total
		scanned += res.Stats.RootBytes + res.Stats.BlockBytes
		read += res.Stats.ScannedBytes
		last = res
		// The baseline runs right after each check, so that both see
		// the same load on the (shared) machine.
		b.StopTimer()
		d, nb := copyBaseline(b, pid, heap, copyBufs)
		copied += d
		copiedBytes += nb
		b.StartTimer()
	}
	b.StopTimer()
	n := float64(b.N)
	scanRate := float64(scanned) / paused.Seconds() / 1e9
	copyRate := float64(copiedBytes) / copied.Seconds() / 1e9
	b.ReportMetric(scanRate, "GB/s")
	b.ReportMetric(copyRate, "copy-GB/s")
	b.ReportMetric(scanRate/copyRate, "scan/copy")
	b.ReportMetric(float64(paused.Microseconds())/1000/n, "paused-ms")
	b.ReportMetric(float64(total.Microseconds())/1000/n, "check-ms")
	b.ReportMetric(float64(scanned)/n/(1<<20), "scanned-MiB")
	b.ReportMetric(float64(read)/n/(1<<20), "read-MiB")
	if peak := peakRSS(); peak > 0 && base > 0 {
		b.ReportMetric(float64(peak-base)/(1<<20), "peakRSS+MiB")
	}
	st := last.Stats
	b.Logf("last check: %d blocks, %d threads; freeze %v snapshot %v index %v mark %v unreachable %v; paused %v",
		st.Blocks, st.Threads, st.Freeze, st.Snapshot, st.Index, st.Mark, st.Unreachable, st.Paused)
}

// heapMappings returns the target's mappings that hold tracked blocks:
// the memory the copy baseline reads. (A list of the blocks' own ranges
// would keep megabytes live in this process and raise the peak RSS
// measured for the checks.)
func heapMappings(b *testing.B, pid int, blocks []Block) []span {
	maps, err := readMaps(pid)
	if err != nil {
		b.Fatal(err)
	}
	used := make([]bool, len(maps))
	for _, bl := range blocks {
		if i := mappingAt(maps, bl.Addr); i >= 0 {
			used[i] = true
		}
	}
	var out []span
	for i, m := range maps {
		if used[i] && m.readable() {
			out = append(out, span{start: m.start, end: m.end})
		}
	}
	return out
}

// baselineBuffers returns copyBaseline's read buffers, one per core,
// with their pages faulted in. They are mapped outside Go's heap, whose
// collector would otherwise let the heap grow by their size and inflate
// the peak RSS measured for the checks.
func baselineBuffers(b *testing.B) [][]byte {
	bufs := make([][]byte, runtime.GOMAXPROCS(0))
	for i := range bufs {
		buf, err := unix.Mmap(-1, 0, readBufSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			b.Fatalf("mmap baseline buffer: %v", err)
		}
		for j := 0; j < len(buf); j += 4096 {
			buf[j] = 1
		}
		b.Cleanup(func() { unix.Munmap(buf) })
		bufs[i] = buf
	}
	return bufs
}

// copyBaseline is the naive floor a scan is measured against: it only
// copies the heap's mappings out of the target with process_vm_readv, in
// 4 MiB reads (the scanner's batch size), one forEachPart part per buffer
// (one per core), looking at no word. It returns the time taken and the
// bytes copied.
func copyBaseline(b *testing.B, pid int, heap []span, bufs [][]byte) (time.Duration, uint64) {
	var chunks []span
	for _, s := range heap {
		for a := s.start; a < s.end; a += readBufSize {
			chunks = append(chunks, span{start: a, end: min(s.end, a+readBufSize)})
		}
	}
	copied := make([]uint64, len(bufs))
	errs := make([]error, len(bufs))
	start := time.Now()
	forEachPart(len(bufs), func(w int) {
		buf := bufs[w]
		for i := w; i < len(chunks) && errs[w] == nil; i += len(bufs) {
			c := chunks[i]
			local := []unix.Iovec{{Base: &buf[0], Len: c.end - c.start}}
			remote := []unix.RemoteIovec{{Base: uintptr(c.start), Len: int(c.end - c.start)}}
			got, err := unix.ProcessVMReadv(pid, local, remote, 0)
			copied[w] += uint64(got)
			errs[w] = err
		}
	})
	d := time.Since(start)
	var total uint64
	for w := range bufs {
		if errs[w] != nil {
			b.Fatalf("copy baseline: process_vm_readv: %v", errs[w])
		}
		total += copied[w]
	}
	return d, total
}

// resetPeakRSS resets this process's peak RSS (VmHWM) to its current RSS
// and returns it, in bytes.
func resetPeakRSS() int64 {
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	return statusKB("VmRSS:") * 1024
}

func peakRSS() int64 { return statusKB("VmHWM:") * 1024 }

func statusKB(key string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(data, []byte{'\n'}) {
		if rest, ok := bytes.CutPrefix(line, []byte(key)); ok {
			f := strings.Fields(string(rest))
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}
