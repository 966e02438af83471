package target

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestCheckProcess(t *testing.T) {
	if err := checkProcess(os.Getpid()); err == nil || err.Error() != "lsan cannot check itself" {
		t.Errorf("own pid: %v", err)
	}
	if err := checkProcess(2); err == nil || !strings.HasPrefix(err.Error(), "pid 2 is a kernel thread") {
		t.Errorf("kthreadd: %v", err)
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if err := checkProcess(cmd.Process.Pid); err != nil {
		t.Errorf("sleep: %v", err)
	}
	if got := Tracer(cmd.Process.Pid); got != "" {
		t.Errorf("Tracer of an untraced process = %q", got)
	}
}

func TestIsKernelThreadParsesOddNames(t *testing.T) {
	dir := t.TempDir()
	old := procRoot
	procRoot = dir
	defer func() { procRoot = old }()
	os.MkdirAll(dir+"/7", 0o755)
	// A command name with ") S 1 " in it must not shift the fields.
	stat := "7 (a) S 1 2 3 (x)) S 0 0 0 0 -1 2129984 0 0 0\n"
	os.WriteFile(dir+"/7/stat", []byte(stat), 0o644)
	if k, err := isKernelThread(7); err != nil || !k {
		t.Errorf("isKernelThread = %v, %v", k, err)
	}
	os.WriteFile(dir+"/7/stat", []byte(fmt.Sprintf("7 (b) S 1 1 1 0 -1 %d 0", 0x400000)), 0o644)
	if k, err := isKernelThread(7); err != nil || k {
		t.Errorf("user process: isKernelThread = %v, %v", k, err)
	}
}
