package scanner

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary doubles as helper processes: with LSAN_SCANNER_HELPER
// set, TestMain runs the helper instead of the tests.
const helperEnv = "LSAN_SCANNER_HELPER"

const jemallocPath = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"

func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(runHelper(h, os.Args[1:]))
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
	builtMu   sync.Mutex
	built     = map[string]string{}
)

// program compiles testdata/NAME.c once per test run and returns the
// binary's path.
func program(t testing.TB, name string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the scanner's process tests need root (ptrace of a non-child, process_vm_readv)")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "lsan-scanner-test-")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	builtMu.Lock()
	defer builtMu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	out := filepath.Join(buildDir, name)
	src, err := filepath.Abs(filepath.Join("testdata", name+".c"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("gcc", "-O0", "-g", "-fno-omit-frame-pointer", "-pthread", "-o", out, src)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, msg)
	}
	built[name] = out
	return out
}

// labeledBlock is one line a test program printed.
type labeledBlock struct {
	Block
	usable uint64
	class  string // expected: direct, indirect, reach, pre, …
	name   string
}

// target is a running test program.
type target struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	blocks []labeledBlock
	lines  []string
	done   chan error
	pid    int
}

// startTarget runs a test program and reads its output up to the line
// "ready".
func startTarget(t testing.TB, path string, env []string, args ...string) *target {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tg := &target{t: t, cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout), pid: cmd.Process.Pid}
	t.Cleanup(tg.stop)
	if err := tg.readUntil("ready", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	return tg
}

// readUntil reads and parses lines until one equals marker.
func (tg *target) readUntil(marker string, timeout time.Duration) error {
	type res struct{ err error }
	ch := make(chan res, 1)
	go func() {
		for {
			line, err := tg.out.ReadString('\n')
			if err != nil {
				ch <- res{fmt.Errorf("reading target output before %q: %w (lines so far: %q)", marker, err, tg.lines)}
				return
			}
			line = strings.TrimSpace(line)
			if line == marker {
				ch <- res{}
				return
			}
			tg.lines = append(tg.lines, line)
			if b, ok := parseBlockLine(line); ok {
				tg.blocks = append(tg.blocks, b)
			}
		}
	}()
	select {
	case r := <-ch:
		return r.err
	case <-time.After(timeout):
		return fmt.Errorf("target did not print %q within %v", marker, timeout)
	}
}

func parseBlockLine(line string) (labeledBlock, bool) {
	f := strings.Fields(line)
	if len(f) != 4 || !strings.HasPrefix(f[0], "0x") {
		return labeledBlock{}, false
	}
	addr, err1 := strconv.ParseUint(f[0][2:], 16, 64)
	size, err2 := strconv.ParseUint(f[1], 10, 64)
	usable, err3 := strconv.ParseUint(f[2], 10, 64)
	class, name, ok := strings.Cut(f[3], ":")
	if err1 != nil || err2 != nil || err3 != nil || !ok {
		return labeledBlock{}, false
	}
	return labeledBlock{Block: Block{Addr: addr, Size: size}, usable: usable, class: class, name: name}, true
}

// tracked returns the blocks a tracer would know: all but the "pre" ones.
func (tg *target) tracked() []labeledBlock {
	var out []labeledBlock
	for _, b := range tg.blocks {
		if b.class != "pre" {
			out = append(out, b)
		}
	}
	return out
}

func plainBlocks(ls []labeledBlock) []Block {
	out := make([]Block, len(ls))
	for i, l := range ls {
		out[i] = l.Block
	}
	return out
}

// stop ends the program: EOF on stdin, then SIGKILL if it lingers.
func (tg *target) stop() {
	if tg.cmd.ProcessState != nil {
		return
	}
	tg.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- tg.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		tg.cmd.Process.Kill()
		<-done
	}
}

// assertRunning fails unless the target is running (not stopped).
func (tg *target) assertRunning() {
	tg.t.Helper()
	assertNotStopped(tg.t, tg.pid)
}

// assertNotStopped fails if any thread of pid is in a stop (t or T).
func assertNotStopped(t testing.TB, pid int) {
	t.Helper()
	tids, err := listTasks(pid)
	if err != nil {
		t.Fatalf("list threads: %v", err)
	}
	// A thread detached a moment ago may still show 't' until it is
	// scheduled: give it a little time.
	deadline := time.Now().Add(2 * time.Second)
	for _, tid := range tids {
		for {
			st, err := readTaskStatus(pid, tid)
			if err != nil || (st.State != 't' && st.State != 'T') {
				if err == nil && st.TracerPID != 0 {
					t.Errorf("thread %d still traced by %d", tid, st.TracerPID)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("thread %d of pid %d left in state %c", tid, pid, st.State)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
