package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// memorySizes are the numbers of blocks measured; the first, one block,
// is the base that the others' slope is taken from.
var memorySizes = []int{1, 1 << 18, 1 << 20, 1 << 21}

// memoryKinds: all of the blocks leaked is the worst case of the report
// (every block reported, each an edge from the array that held it) and,
// attached, of the confirmation (the last check scans a second copy); all
// of them reachable, that of the flood (every block reached from one).
var memoryKinds = []string{"leaked", "reachable"}

// benchMemory measures lsan's own peak RSS checking a program that holds
// N tracked blocks, for a few N: the slope is lsan's memory per tracked
// block. modes: "run" (lsan run, checking at the program's exit),
// "checks" (lsan run -i, checking while the program runs too), "attach"
// (lsan -p, one final check).
func benchMemory(modes string) error {
	dir, lsan, prog, err := buildWithLSan("manyblocks")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if strings.Contains(modes, "run") {
		fmt.Printf("\nlsan's peak RSS, lsan run on a program holding N blocks at exit, leaked or reachable\n")
		err = memoryTable(func(n int, kind string) (int, error) {
			return peakRSS(lsan, "run", "--max-blocks", strconv.Itoa(4<<20), "--format", "json", "--", prog, strconv.Itoa(n), kind)
		})
		if err != nil {
			return err
		}
	}
	if !strings.Contains(modes, "checks") && !strings.Contains(modes, "attach") {
		return nil
	}
	attached, err := buildProgram(dir, "attachblocks")
	if err != nil {
		return err
	}
	if strings.Contains(modes, "checks") {
		fmt.Printf("\nlsan's peak RSS, lsan run -i %v on a program that allocates N blocks, two checks while it holds them and one at its exit, leaked or reachable\n", runCheckInterval)
		err = memoryTable(func(n int, kind string) (int, error) {
			return peakRSSRunChecks(lsan, attached, n, kind)
		})
		if err != nil || !strings.Contains(modes, "attach") {
			return err
		}
	}
	fmt.Printf("\nlsan's peak RSS, lsan -p attached to a program that then allocates N blocks, one final check (SIGINT), leaked or reachable\n")
	return memoryTable(func(n int, kind string) (int, error) {
		return peakRSSAttached(lsan, attached, n, kind)
	})
}

// memoryTable prints the peak RSS measure gives for each size and kind,
// and its slope per Mi blocks from the one-block run of the same kind.
func memoryTable(measure func(n int, kind string) (kib int, err error)) error {
	fmt.Printf("%-12s %14s %12s %14s %12s\n", "blocks", "leaked MiB", "per Mi", "reachable MiB", "per Mi")
	var base [2]float64
	for _, n := range memorySizes {
		fmt.Printf("%-12d", n)
		for i, kind := range memoryKinds {
			kib, err := measure(n, kind)
			if err != nil {
				fmt.Println()
				return fmt.Errorf("%d blocks %s: %w", n, kind, err)
			}
			mib := float64(kib) / 1024
			if n == memorySizes[0] {
				base[i] = mib
				fmt.Printf(" %14.0f %12s", mib, "—")
				continue
			}
			fmt.Printf(" %14.0f %12.0f", mib, (mib-base[i])/(float64(n)/(1<<20)))
		}
		fmt.Println()
	}
	return nil
}

// peakRSS runs lsan with args and returns its peak RSS in KiB: the
// ru_maxrss wait4 reports, which covers lsan and the command it ran and
// waited for, whichever took more (here lsan: the command holds only the
// blocks lsan checks). VmHWM polled while lsan ran missed what came after
// the last poll: a run of one block read 21 to 31 MiB.
func peakRSS(lsan string, args ...string) (int, error) {
	cmd := exec.Command(lsan, args...)
	var exit *exec.ExitError
	if err := cmd.Run(); err != nil && !errors.As(err, &exit) {
		return 0, err
	}
	return maxRSS(cmd)
}

// attachTimeout bounds each step of an attached measurement: attaching,
// the program's allocations under the probes (~3 s a million), the final
// check (two copies' scans).
const attachTimeout = 2 * time.Minute

// peakRSSAttached starts prog holding nothing yet, attaches lsan -p to it
// with checks an hour apart, lets it allocate n blocks (kind: leaked or
// reachable), interrupts lsan, which checks once more and detaches, and
// returns lsan's peak RSS in KiB (ru_maxrss: lsan's own, the program
// being no child of it). Both processes are gone when it returns.
func peakRSSAttached(lsan, prog string, n int, kind string) (int, error) {
	target, err := startLineProgram(prog, strconv.Itoa(n), kind)
	if err != nil {
		return 0, err
	}
	defer target.end()
	if err := target.expect("ready"); err != nil {
		return 0, err
	}
	cmd := exec.Command(lsan, "-p", strconv.Itoa(target.cmd.Process.Pid), "-i", "1h",
		"--max-blocks", strconv.Itoa(4<<20), "--format", "json", "-o", os.DevNull)
	lines := make(chan string, 64)
	cmd.Stderr = &lineWriter{lines: lines}
	l, err := start(cmd)
	if err != nil {
		return 0, err
	}
	defer l.stop() // on an error: lsan must not outlive the measurement
	if err := awaitLine(lines, l.exited, "attached to pid"); err != nil {
		return 0, fmt.Errorf("lsan -p: %w", err)
	}
	if err := target.say("go"); err != nil {
		return 0, err
	}
	if err := target.expect("done"); err != nil {
		return 0, err
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		return 0, err
	}
	select {
	case <-l.exited:
	case <-time.After(attachTimeout):
		return 0, fmt.Errorf("lsan -p still running %v after SIGINT", attachTimeout)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 && code != 23 {
		return 0, fmt.Errorf("lsan -p exited with status %d", code)
	}
	return maxRSS(cmd)
}

// runCheckInterval is lsan run -i's in the "checks" measurement.
const runCheckInterval = time.Second

// peakRSSRunChecks runs prog under lsan run checking every
// runCheckInterval, lets it allocate n blocks (kind: leaked or
// reachable), waits for two checks of them, lets it exit (a check at its
// exit), and returns lsan's peak RSS in KiB (ru_maxrss: lsan's, or the
// program's if larger, which it is not: it holds the blocks alone).
func peakRSSRunChecks(lsan, prog string, n int, kind string) (int, error) {
	p, err := startLineProgram(lsan, "run", "-i", runCheckInterval.String(), "--max-blocks", strconv.Itoa(4<<20),
		"--format", "json", "-o", os.DevNull, "--", prog, strconv.Itoa(n), kind)
	if err != nil {
		return 0, err
	}
	defer p.stop() // on an error: neither may outlive the measurement
	for _, step := range []func() error{
		func() error { return p.expect("ready") },
		func() error { return p.say("go") },
		func() error { return p.expect("done") },
	} {
		if err := step(); err != nil {
			return 0, err
		}
	}
	time.Sleep(runCheckInterval * 5 / 2)
	if err := p.in.Close(); err != nil {
		return 0, err
	}
	select {
	case <-p.exited:
	case <-time.After(attachTimeout):
		return 0, fmt.Errorf("lsan run still running %v after the program was told to exit", attachTimeout)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 && code != 23 {
		return 0, fmt.Errorf("lsan run exited with status %d", code)
	}
	return maxRSS(p.cmd)
}

// maxRSS is the peak RSS in KiB of cmd, which has ended (ru_maxrss).
func maxRSS(cmd *exec.Cmd) (int, error) {
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, fmt.Errorf("%s: no resource usage", cmd.Path)
	}
	return int(ru.Maxrss), nil
}

// awaitLine waits for a line containing want (attachTimeout at most);
// exited, if not nil, is closed when the writer is gone.
func awaitLine(lines <-chan string, exited <-chan struct{}, want string) error {
	timeout := time.After(attachTimeout)
	var last string
	for {
		select {
		case l := <-lines:
			if strings.Contains(l, want) {
				return nil
			}
			last = l
		case <-exited:
			return fmt.Errorf("exited before %q (last said: %q)", want, last)
		case <-timeout:
			return fmt.Errorf("no %q after %v (last said: %q)", want, attachTimeout, last)
		}
	}
}

// lineWriter sends what is written to it line by line, dropping lines
// nobody reads (the measurement stops listening once attached).
type lineWriter struct {
	lines   chan<- string
	partial []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.partial = append(w.partial, b...)
	for {
		i := strings.IndexByte(string(w.partial), '\n')
		if i < 0 {
			return len(b), nil
		}
		select {
		case w.lines <- string(w.partial[:i]):
		default:
		}
		w.partial = w.partial[i+1:]
	}
}

// started is a started command, awaited in the background.
type started struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once it is gone and cmd.ProcessState set
}

func start(cmd *exec.Cmd) (*started, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &started{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

// stop kills the command unless it is gone, and waits for it.
func (s *started) stop() {
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// lineProgram is a program driven line by line on stdin and stdout.
type lineProgram struct {
	*started
	in    io.WriteCloser
	lines chan string
}

func startLineProgram(prog string, args ...string) (*lineProgram, error) {
	cmd := exec.Command(prog, args...)
	p := &lineProgram{lines: make(chan string, 4)}
	cmd.Stdout = &lineWriter{lines: p.lines}
	var err error
	if p.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if p.started, err = start(cmd); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *lineProgram) expect(want string) error {
	if err := awaitLine(p.lines, p.exited, want); err != nil {
		return fmt.Errorf("%s: %w", p.cmd.Path, err)
	}
	return nil
}

func (p *lineProgram) say(line string) error {
	_, err := io.WriteString(p.in, line+"\n")
	return err
}

// end ends the program: the end of its stdin ends its waits, and it is
// killed if that is not enough.
func (p *lineProgram) end() {
	_ = p.in.Close()
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.stop()
	}
}
