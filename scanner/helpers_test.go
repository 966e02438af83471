package scanner

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// runHelper runs one helper role of the test binary (see TestMain).
func runHelper(role string, args []string) int {
	if len(args) < 1 {
		fmt.Println("helper needs a pid")
		return 2
	}
	pid, err := strconv.Atoi(args[0])
	if err != nil {
		fmt.Println(err)
		return 2
	}
	switch role {
	case "seize":
		return helperSeize(pid)
	case "checkloop":
		return helperCheckLoop(pid)
	case "checkonce":
		_, err := Check(pid, func() ([]Block, error) { return nil, nil }, Options{})
		fmt.Printf("permission=%v\n%v\n", errors.Is(err, os.ErrPermission), err)
		return 0
	}
	fmt.Printf("unknown helper %q\n", role)
	return 2
}

// helperSeize traces pid (its main thread) like a debugger would, prints
// "seized" and holds it until stdin is closed.
func helperSeize(pid int) int {
	runtime.LockOSThread()
	if err := unix.PtraceSeize(pid); err != nil {
		fmt.Printf("seize: %v\n", err)
		return 1
	}
	fmt.Println("seized")
	bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

// helperCheckLoop checks pid forever; each snapshot prints "frozen" and
// holds the target stopped for a while, so that the test can kill this
// process while the target is frozen.
func helperCheckLoop(pid int) int {
	for {
		_, err := Check(pid, func() ([]Block, error) {
			fmt.Println("frozen")
			time.Sleep(300 * time.Millisecond)
			return nil, nil
		}, Options{})
		if err != nil {
			fmt.Printf("check: %v\n", err)
			return 1
		}
	}
}

// startHelper runs the test binary as a helper process.
func startHelper(t *testing.T, role string, pid int) (*exec.Cmd, *bufio.Reader, func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], strconv.Itoa(pid))
	cmd.Env = append(os.Environ(), helperEnv+"="+role)
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
	stop := func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(stop)
	return cmd, bufio.NewReader(stdout), stop
}

// readLineTimeout reads one line or fails after d.
func readLineTimeout(t *testing.T, r *bufio.Reader, d time.Duration) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		s, err := r.ReadString('\n')
		if err != nil {
			s = "ERROR: " + err.Error()
		}
		ch <- s
	}()
	select {
	case s := <-ch:
		return s
	case <-time.After(d):
		t.Fatalf("no line within %v", d)
		return ""
	}
}
