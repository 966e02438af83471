package symbolize

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// requireTool finds a program the test needs. A missing tool fails the
// test under CI (CI set in the environment), where it must be installed,
// and skips it elsewhere.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required (CI is set): %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

// run runs a command and fails the test with its output if it fails.
func run(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// testdataPath is the absolute path of a file under testdata/.
func testdataPath(t testing.TB, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// compile builds testdata/src with compiler and flags into dir/out.
func compile(t testing.TB, dir, compiler, src, out string, flags ...string) string {
	t.Helper()
	requireTool(t, compiler)
	outPath := filepath.Join(dir, out)
	args := append(append([]string{}, flags...), "-o", outPath, testdataPath(t, src))
	if compiler != "rustc" && strings.HasSuffix(src, ".c") && !contains(flags, "-static") {
		args = append(args, "-ldl")
	}
	run(t, dir, compiler, args...)
	return outPath
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// markers returns the line numbers of the "LINE:name" markers of a source.
func markers(t testing.TB, src string) map[string]int {
	t.Helper()
	data, err := os.ReadFile(testdataPath(t, src))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`LINE:(\w+)`)
	out := map[string]int{}
	for i, line := range strings.Split(string(data), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			out[m[1]] = i + 1
		}
	}
	return out
}

// target is a running test program.
type target struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addrs map[string]uint64 // what it printed before "ready"
}

func (tg *target) pid() int { return tg.cmd.Process.Pid }

// start runs a test program and reads the addresses it prints. The
// program keeps running until the test ends (its stdin is closed then).
func start(t testing.TB, name string, args ...string) *target {
	t.Helper()
	cmd := exec.Command(name, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	tg := &target{cmd: cmd, stdin: stdin, addrs: map[string]uint64{}}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if line == "ready" {
			return tg
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("%s printed %q", name, line)
		}
		v, err := strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 64)
		if err != nil {
			t.Fatalf("%s printed %q: %v", name, line, err)
		}
		tg.addrs[f[0]] = v
	}
	t.Fatalf("%s exited before printing ready: %v", name, sc.Err())
	return nil
}

// toolFrame is one frame as addr2line or llvm-symbolizer prints it.
type toolFrame struct {
	Function string
	File     string
	Line     int
	Column   int // llvm-symbolizer only
}

func (f toolFrame) String() string {
	return fmt.Sprintf("%s %s:%d:%d", f.Function, f.File, f.Line, f.Column)
}

// addr2line symbolizes module offsets with GNU addr2line (-f -i -C), all
// in one process: one []toolFrame per offset.
func addr2line(t testing.TB, module string, offsets []uint64) [][]toolFrame {
	t.Helper()
	return parseAddr2line(t, addr2lineOutput(t, module, offsetsInput(offsets)), len(offsets))
}

// addr2lineOutput runs addr2line on input (one offset per line).
func addr2lineOutput(t testing.TB, module, input string) string {
	t.Helper()
	requireTool(t, "addr2line")
	return runWithInput(t, input, "addr2line", "-a", "-f", "-i", "-C", "-e", module)
}

var discriminator = regexp.MustCompile(` \(discriminator \d+\)$`)

func parseAddr2line(t testing.TB, out string, n int) [][]toolFrame {
	t.Helper()
	var res [][]toolFrame
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	for i := 0; i < len(lines); {
		if strings.HasPrefix(lines[i], "0x") {
			res = append(res, nil)
			i++
			continue
		}
		if i+1 >= len(lines) || len(res) == 0 {
			t.Fatalf("unexpected addr2line output at line %d: %q", i, lines[i])
		}
		loc := discriminator.ReplaceAllString(lines[i+1], "")
		file, line := splitLoc(loc)
		res[len(res)-1] = append(res[len(res)-1], toolFrame{Function: lines[i], File: file, Line: line})
		i += 2
	}
	if len(res) != n {
		t.Fatalf("addr2line answered %d addresses, asked %d", len(res), n)
	}
	return res
}

// llvmSymbolizer symbolizes module offsets with llvm-symbolizer
// (inlining and demangling on, its defaults).
func llvmSymbolizer(t testing.TB, module string, offsets []uint64) [][]toolFrame {
	t.Helper()
	return parseLLVMSymbolizer(t, llvmSymbolizerOutput(t, module, offsetsInput(offsets)), len(offsets))
}

// llvmSymbolizerOutput runs llvm-symbolizer on input (one offset per line).
func llvmSymbolizerOutput(t testing.TB, module, input string) string {
	t.Helper()
	requireTool(t, "llvm-symbolizer")
	return runWithInput(t, input, "llvm-symbolizer", "--obj="+module)
}

func parseLLVMSymbolizer(t testing.TB, out string, n int) [][]toolFrame {
	t.Helper()
	var res [][]toolFrame
	for _, block := range strings.Split(strings.TrimRight(out, "\n"), "\n\n") {
		lines := strings.Split(strings.TrimLeft(block, "\n"), "\n")
		var frames []toolFrame
		for i := 0; i+1 < len(lines); i += 2 {
			loc := lines[i+1]
			var col int
			// file:line:column
			if j := strings.LastIndexByte(loc, ':'); j >= 0 {
				if c, err := strconv.Atoi(loc[j+1:]); err == nil {
					col, loc = c, loc[:j]
				}
			}
			file, line := splitLoc(loc)
			frames = append(frames, toolFrame{Function: lines[i], File: file, Line: line, Column: col})
		}
		res = append(res, frames)
	}
	if len(res) != n {
		t.Fatalf("llvm-symbolizer answered %d addresses, asked %d", len(res), n)
	}
	return res
}

func splitLoc(loc string) (string, int) {
	j := strings.LastIndexByte(loc, ':')
	if j < 0 {
		return loc, 0
	}
	n, err := strconv.Atoi(loc[j+1:])
	if err != nil {
		return loc, 0
	}
	return loc[:j], n
}

func offsetsInput(offsets []uint64) string {
	var b strings.Builder
	for _, o := range offsets {
		fmt.Fprintf(&b, "0x%x\n", o)
	}
	return b.String()
}

func runWithInput(t testing.TB, input, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return string(out)
}

// toolView reduces our frames to what the tools print: "??" for unknown
// names and files, line 0 when unknown.
func toolView(frames []Frame) []toolFrame {
	out := make([]toolFrame, len(frames))
	for i, f := range frames {
		tf := toolFrame{Function: f.Function, File: f.File, Line: f.Line, Column: f.Column}
		if tf.Function == "" {
			tf.Function = "??"
		}
		if tf.File == "" {
			tf.File = "??"
		}
		out[i] = tf
	}
	return out
}
