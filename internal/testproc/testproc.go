// Package testproc runs the small C programs the tests of several packages
// drive: started with pipes on stdin and stdout, always ended with the test.
package testproc

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// RequireRoot skips a test that needs root (BPF, ptrace) where it cannot
// run, except in CI (CI set), where such a test must fail instead.
func RequireRoot(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s need root (CI is set: they must run)", what)
	}
	t.Skipf("%s need root", what)
}

// Proc is a running test program.
type Proc struct {
	Cmd   *exec.Cmd
	Stdin io.WriteCloser
	Out   *bufio.Reader
}

// Start starts cmd with its stdin and stdout piped (stderr goes to the
// test's). When the test ends the program is killed and reaped.
func Start(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// A group of its own, so that the cleanup also ends whatever the
	// program forked (a daemon's workers outlive a killed master).
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() { stop(cmd, stdin) })
	return &Proc{Cmd: cmd, Stdin: stdin, Out: bufio.NewReader(stdout)}
}

func stop(cmd *exec.Cmd, stdin io.Closer) {
	stdin.Close()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
}

// Pid is the program's process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Expect reads the program's lines until one is want.
func (p *Proc) Expect(t testing.TB, want string) {
	t.Helper()
	for {
		line, err := p.Out.ReadString('\n')
		if err != nil {
			t.Fatalf("waiting for %q: %v", want, err)
		}
		if strings.TrimSpace(line) == want {
			return
		}
	}
}
