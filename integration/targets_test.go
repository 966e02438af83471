package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestLibcWithSmallInode: a libc on a fresh tmpfs has a one-digit inode
// number, which also occurs in its mapping's addresses. /proc/PID/maps is
// parsed by field, so lsan finds malloc there, in run and attach mode.
func TestLibcWithSmallInode(t *testing.T) {
	requireRoot(t)
	lsan(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	defer exec.Command("umount", "-l", dir).Run()
	libc := filepath.Join(dir, "libc.so.6")
	data, err := os.ReadFile("/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(libc, data, 0o755); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(libc, &st); err != nil || st.Ino > 9 {
		t.Fatalf("libc's inode on the tmpfs is %d (%v), want one digit", st.Ino, err)
	}
	bin := filepath.Join(repoRoot, "examples", "bin", "malloc")
	want := []expectGroup{{Kind: "direct", Function: "leak_medium", Bytes: 3060, Count: 3}}

	cmd := exec.Command(lsan(t), "run", "--format", "json", "--", bin)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+dir)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Run()
	if !strings.Contains(stderr.String(), "probing malloc in "+libc) {
		t.Fatalf("lsan run did not probe the tmpfs libc:\n%s", stderr.String())
	}
	reps := jsonReportsIn(t, stdout.String())
	if d := diffGroups(groupsByFunction(reps[len(reps)-1], true), want); d != "" {
		t.Errorf("lsan run:\n%s", d)
	}

	ex := example{Name: "malloc"}
	ex.Run.Env = map[string]string{"LD_LIBRARY_PATH": dir}
	p := startExample(t, ex)
	a := attach(t, p.Pid(), "--format", "json", "-i", "1h")
	if !strings.Contains(a.stderr.String(), "probing malloc in "+libc) {
		t.Fatalf("lsan -p did not probe the tmpfs libc:\n%s", a.stderr.String())
	}
	p.trigger(t)
	a.stop(t)
	reps = parseReports(t, a.stdout.String())
	if d := diffGroups(groupsByFunction(reps[len(reps)-1], true), want); d != "" {
		t.Errorf("lsan -p:\n%s", d)
	}
}
