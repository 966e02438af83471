package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// buildWithLSan builds lsan and bench/NAME.c (-O2) into a new directory,
// which the caller removes.
func buildWithLSan(name string) (dir, lsan, prog string, err error) {
	if dir, err = os.MkdirTemp("", "lsanbench"); err != nil {
		return "", "", "", err
	}
	if lsan, err = buildLSan(dir); err != nil {
		os.RemoveAll(dir)
		return "", "", "", err
	}
	if prog, err = buildProgram(dir, name); err != nil {
		os.RemoveAll(dir)
		return "", "", "", err
	}
	return dir, lsan, prog, nil
}

// buildProgram builds bench/name.c into dir, -O2.
func buildProgram(dir, name string) (string, error) {
	prog := filepath.Join(dir, name)
	src := filepath.Join(sourceDir(), name+".c")
	if b, err := exec.Command("gcc", "-O2", "-o", prog, src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", src, err, b)
	}
	return prog, nil
}

// benchRun measures what `lsan run` adds: the wall time of a run of a
// trivial command (attach before it starts, check at its exit, detach),
// and the time per forked child with and without --follow-forks.
func benchRun(children, rounds int) error {
	dir, lsan, loop, err := buildWithLSan("forkloop")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	n := strconv.Itoa(children)
	variants := []struct {
		name string
		argv []string
	}{
		{"untraced", []string{loop, n}},
		{"lsan run", []string{lsan, "run", "--", loop, n}},
		{"lsan run --follow-forks", []string{lsan, "run", "--follow-forks", "--", loop, n}},
	}
	wall := make([][]float64, len(variants))
	perChild := make([][]float64, len(variants))
	for r := 0; r < rounds; r++ {
		for i, v := range variants {
			start := time.Now()
			out, err := exec.Command(v.argv[0], v.argv[1:]...).Output()
			if err != nil {
				return fmt.Errorf("%s: %v", v.name, err)
			}
			us, err := loopFigure(string(out))
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			wall[i] = append(wall[i], float64(time.Since(start).Milliseconds()))
			perChild[i] = append(perChild[i], us)
		}
	}
	base := median(perChild[0])
	fmt.Printf("\nlsan run: %d forked children per run (each mallocs, frees, exits), median of %d runs\n", children, rounds)
	fmt.Printf("%-28s %12s %14s %16s\n", "variant", "wall ms", "us per child", "vs untraced")
	for i, v := range variants {
		m := median(perChild[i])
		fmt.Printf("%-28s %12.0f %14.1f %15.1fx\n", v.name, median(wall[i]), m, m/base)
	}
	return nil
}

// buildLSan builds the CLI into dir.
func buildLSan(dir string) (string, error) {
	out := filepath.Join(dir, "lsan")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/lsan")
	cmd.Dir = filepath.Join(sourceDir(), "..")
	if sourceDir() == "bench" {
		cmd.Dir = "."
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build lsan: %v\n%s", err, b)
	}
	return out, nil
}

// loopFigure finds the loop's one number among lsan's report lines.
func loopFigure(out string) (float64, error) {
	for _, line := range strings.Split(out, "\n") {
		if v, err := strconv.ParseFloat(strings.TrimSpace(line), 64); err == nil {
			return v, nil
		}
	}
	return 0, fmt.Errorf("no figure in the output (%d bytes)", len(out))
}
