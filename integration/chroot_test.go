package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lsan-project/lsan/internal/testproc"
)

// jailLeaker chroots itself into argv[1] (when given) once its libraries
// are mapped, then leaks three 100-byte blocks from leak_in_jail on "go".
const jailLeaker = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *volatile sink;

__attribute__((noinline)) void leak_in_jail(void) {
	for (int i = 0; i < 3; i++) {
		sink = malloc(100);
		memset(sink, 1, 100);
	}
	sink = 0;
}

int main(int argc, char **argv) {
	char line[16];
	setvbuf(stdout, 0, _IONBF, 0);
	if (argc > 1 && (chroot(argv[1]) != 0 || chdir("/") != 0)) {
		perror("chroot");
		return 1;
	}
	printf("ready\n");
	if (!fgets(line, sizeof line, stdin))
		return 0;
	leak_in_jail();
	printf("done\n");
	while (fgets(line, sizeof line, stdin))
		;
	return 0;
}
`

// buildJailLeaker compiles jailLeaker into dir.
func buildJailLeaker(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "jail_leaker.c")
	bin := filepath.Join(dir, "jail_leaker")
	os.WriteFile(src, []byte(jailLeaker), 0o644)
	if out, err := exec.Command("gcc", "-O0", "-g", "-fno-omit-frame-pointer", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}

// makeJail copies bin and the libraries it loads into a new root
// directory, at the same paths.
func makeJail(t *testing.T, bin string) string {
	t.Helper()
	jail := t.TempDir()
	files := []string{bin}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		t.Fatalf("ldd: %v", err)
	}
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "/") {
			files = append(files, f)
		}
	}
	for _, f := range files {
		dst := filepath.Join(jail, f)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		copyFile(t, f, dst)
	}
	return jail
}

// checkJailLeak attaches to a started jail_leaker and asserts its leak.
func checkJailLeak(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	p := testproc.Start(t, cmd)
	p.Expect(t, "ready")
	a := attach(t, p.Pid(), "--format", "json", "-i", "1h")
	p.Stdin.Write([]byte("go\n"))
	p.Expect(t, "done")
	code := a.stop(t)
	reps := parseReports(t, a.stdout.String())
	got := groupsByFunction(reps[len(reps)-1], true)
	want := []expectGroup{{Kind: "direct", Function: "leak_in_jail", Bytes: 300, Count: 3}}
	if d := diffGroups(got, normalize(want, true)); d != "" {
		t.Errorf("leaks:\n%s\nstderr:\n%s", d, a.stderr.String())
	}
	if code != 23 {
		t.Errorf("exit status %d, want 23\n%s", code, a.stderr.String())
	}
}

// TestChrootSelf: a program that chroots itself after start (as bind9,
// postfix and sshd's privilege separation do). Its maps show paths from
// lsan's root, which no longer exist under its own root.
func TestChrootSelf(t *testing.T) {
	requireRoot(t)
	lsan(t)
	bin := buildJailLeaker(t, t.TempDir())
	empty := t.TempDir()
	checkJailLeak(t, exec.Command(bin, empty))
}

// TestChrootStarted: a program started under chroot(8). Its maps show
// paths with the jail prefix; opening them under /proc/PID/root applied
// the prefix twice.
func TestChrootStarted(t *testing.T) {
	requireRoot(t)
	lsan(t)
	bin := buildJailLeaker(t, t.TempDir())
	jail := makeJail(t, bin)
	checkJailLeak(t, exec.Command("chroot", jail, bin))
}

// TestOwnMountNamespace: a program in its own mount namespace, run from a
// tmpfs mounted only there: its files exist only under /proc/PID/root.
func TestOwnMountNamespace(t *testing.T) {
	requireRoot(t)
	lsan(t)
	bin := buildJailLeaker(t, t.TempDir())
	hidden := t.TempDir()
	script := fmt.Sprintf(`mount -t tmpfs none %[1]s && cp %[2]s %[1]s/leaker && exec %[1]s/leaker`, hidden, bin)
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script)
	checkJailLeak(t, cmd)
	if _, err := os.Stat(filepath.Join(hidden, "leaker")); err == nil {
		t.Errorf("the tmpfs leaked into lsan's mount namespace")
	}
}
