package integration

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lsan-project/lsan/internal/testproc"
)

// TestSecondInterruptAborts: the first Ctrl-C makes lsan -p check once
// more; a second one during that check aborts it. lsan ends at once with
// one line, and the target runs on, neither stopped nor traced.
func TestSecondInterruptAborts(t *testing.T) {
	requireRoot(t)
	bin := buildTestdata(t, "bigheap", "-O2")
	p := testproc.Start(t, exec.Command(bin))
	p.Expect(t, "ready")
	a := attach(t, p.Pid(), "-i", "1h")
	io.WriteString(p.Stdin, "go\n")
	p.Expect(t, "done")
	a.cmd.Process.Signal(syscall.SIGINT)
	// The check stops the target; interrupt again while it runs.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(a.stderr.String(), "final check") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	a.cmd.Process.Signal(syscall.SIGINT)
	start := time.Now()
	code := a.stop(t) // its SIGINT is the third: ignored
	if code != 1 || !strings.Contains(a.stderr.String(), "lsan: interrupted again: leak check of pid") {
		t.Fatalf("exit status %d, stderr:\n%s", code, a.stderr.String())
	}
	t.Logf("lsan ended %v after the second interrupt", time.Since(start))
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if state, ok := strings.CutPrefix(line, "State:"); ok && strings.ContainsAny(strings.TrimSpace(state)[:1], "Tt") ||
			(strings.HasPrefix(line, "TracerPid:") && strings.TrimSpace(strings.TrimPrefix(line, "TracerPid:")) != "0") {
			t.Errorf("target after the abort: %s", line)
		}
	}
}
