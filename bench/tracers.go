package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// liblsan is GCC's standalone LeakSanitizer, preloadable without
// recompiling: what lsan run is held to.
const liblsan = "/usr/lib/x86_64-linux-gnu/liblsan.so.0"

// workload is one command lsan run is timed on.
type workload struct {
	name  string
	argv  []string
	stdin string
}

// benchTracers times lsan run's two tracers against the command alone and
// against preloaded LSan, on the fixed cost (/bin/true), a malloc+free
// loop, git log -p on a generated repository and a sqlite3 script: wall
// time of the whole command, median of rounds, interleaved.
func benchTracers(rounds int) error {
	dir, lsan, loop, err := buildWithLSan("mallocloop")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	repo, err := generateRepo(filepath.Join(dir, "repo"), 300)
	if err != nil {
		return err
	}
	script, err := sqliteScript(filepath.Join(dir, "bench.sql"), 20000)
	if err != nil {
		return err
	}
	workloads := []workload{
		{"/bin/true (fixed cost)", []string{"/bin/true"}, ""},
		{"2M malloc+free pairs", []string{loop, "2000000"}, "go\n"},
		{"git log -p --stat (300 commits)", []string{"git", "-C", repo, "log", "-p", "--stat"}, ""},
		{"sqlite3 script (20k rows)", []string{"sqlite3", ":memory:", ".read " + script}, ""},
	}
	variants := []struct {
		name string
		wrap func(argv []string) ([]string, []string)
	}{
		{"plain", func(a []string) ([]string, []string) { return a, nil }},
		{"LD_PRELOAD=liblsan.so.0", func(a []string) ([]string, []string) {
			return a, []string{"LD_PRELOAD=" + liblsan, "LSAN_OPTIONS=exitcode=0"}
		}},
		{"lsan run --tracer=uprobe", func(a []string) ([]string, []string) {
			return append([]string{lsan, "run", "--tracer", "uprobe", "--"}, a...), nil
		}},
		{"lsan run (inproc)", func(a []string) ([]string, []string) {
			return append([]string{lsan, "run", "--"}, a...), nil
		}},
	}
	fmt.Printf("\nlsan run vs LSan: wall ms of the whole command, median of %d runs (ratio to plain)\n", rounds)
	fmt.Printf("%-34s", "workload")
	for _, v := range variants {
		fmt.Printf(" %26s", v.name)
	}
	fmt.Println()
	for _, w := range workloads {
		times := make([][]float64, len(variants))
		crashed := make([]string, len(variants))
		for r := 0; r < rounds; r++ {
			for i, v := range variants {
				argv, env := v.wrap(w.argv)
				d, err := timeCommand(argv, env, w.stdin)
				if err != nil {
					crashed[i] = err.Error()
					continue
				}
				times[i] = append(times[i], float64(d.Microseconds())/1000)
			}
		}
		base := median(times[0])
		fmt.Printf("%-34s", w.name)
		for i := range variants {
			if len(times[i]) == 0 {
				fmt.Printf(" %26s", crashed[i])
				continue
			}
			m := median(times[i])
			fmt.Printf(" %17.1f (%5.2fx)", m, m/base)
		}
		fmt.Println()
	}
	return nil
}

// timeCommand runs argv to its end; a death by signal is an error (LSan
// crashes on some programs), a non-zero status is not (leaks found).
func timeCommand(argv, env []string, stdin string) (time.Duration, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(interface{ Signaled() bool }); ok && ws.Signaled() {
			return 0, fmt.Errorf("crashed (%v)", ee)
		}
		return d, nil
	}
	return d, err
}

// generateRepo makes a git repository of n commits, each changing a few
// files, for git log -p.
func generateRepo(dir string, n int) (string, error) {
	git := func(args ...string) error {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=b", "GIT_AUTHOR_EMAIL=b@example.com",
			"GIT_COMMITTER_NAME=b", "GIT_COMMITTER_EMAIL=b@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %v: %v\n%s", args, err, out)
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := git("init", "-q"); err != nil {
		return "", err
	}
	for i := 0; i < n; i++ {
		for f := 0; f < 3; f++ {
			name := filepath.Join(dir, fmt.Sprintf("file%d.txt", (i+f)%20))
			var b strings.Builder
			for l := 0; l < 40; l++ {
				fmt.Fprintf(&b, "line %d of commit %d, file %d\n", l, i-(l%7), f)
			}
			if err := os.WriteFile(name, []byte(b.String()), 0o644); err != nil {
				return "", err
			}
		}
		if err := git("add", "-A"); err != nil {
			return "", err
		}
		if err := git("commit", "-q", "-m", fmt.Sprintf("commit %d", i)); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// sqliteScript writes a script that fills two tables of rows rows and
// joins, groups and sorts them.
func sqliteScript(path string, rows int) (string, error) {
	var b strings.Builder
	b.WriteString("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL);\n")
	b.WriteString("CREATE TABLE u(id INTEGER PRIMARY KEY, tid INTEGER, note TEXT);\nBEGIN;\n")
	for i := 0; i < rows; i++ {
		fmt.Fprintf(&b, "INSERT INTO t VALUES(%d, 'name-%d-%x', %d.5);\n", i, i%97, i*2654435761%100000, i%1000)
		fmt.Fprintf(&b, "INSERT INTO u VALUES(%d, %d, 'note %d');\n", i, (i*7)%rows, i)
	}
	b.WriteString("COMMIT;\nCREATE INDEX tn ON t(name);\n")
	b.WriteString("SELECT name, count(*), avg(v) FROM t GROUP BY name ORDER BY 2 DESC LIMIT 5;\n")
	b.WriteString("SELECT count(*) FROM t JOIN u ON u.tid = t.id WHERE t.v > 500;\n")
	b.WriteString("SELECT group_concat(note, ',') FROM (SELECT note FROM u ORDER BY note DESC LIMIT 2000);\n")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}
