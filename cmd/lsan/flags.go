package main

import (
	"fmt"
	"math"
	"os"

	"github.com/urfave/cli/v2"
)

// Upper bounds of the BPF map sizes. The kernel refuses far larger maps
// with E2BIG ("argument list too long"), and long before that the maps
// would take gigabytes of kernel memory: a live block costs about 112 bytes
// of map, a stored stack about 1 KiB.
const (
	maxMaxBlocks = 1 << 26 // ~7 GiB of map
	maxMaxStacks = 1 << 22 // ~4 GiB of map
	// maxMaxUnwindRows: a BPF array holds at most 2^32 - 1 entries, and
	// 2^28 rows (2 GiB) is far more than every file of a system together.
	maxMaxUnwindRows = 1 << 28
)

// validateFlags rejects every out-of-range value in the user's terms
// (usage errors, exit status 2), instead of truncating it or falling back
// to the default.
func validateFlags(c *cli.Context) error {
	if err := inRange(c, "max-blocks", 1, maxMaxBlocks, "the live-block map needs room for at least one block"); err != nil {
		return err
	}
	if err := inRange(c, "max-stacks", 1, maxMaxStacks, "the stack map needs room for at least one stack"); err != nil {
		return err
	}
	if err := inRange(c, "max-unwind-rows", 1, maxMaxUnwindRows, "the unwind table needs room for at least one row"); err != nil {
		return err
	}
	if err := inRange(c, "sample-rate", 1, math.MaxUint32, "1 tracks every allocation"); err != nil {
		return err
	}
	if c.IsSet("exitcode") {
		if n := c.Int("exitcode"); n < 0 || n > 255 {
			return usageError{fmt.Errorf("--exitcode %d: an exit status is 0 to 255", n)}
		}
	}
	if n := c.Int("top"); c.IsSet("top") && n < 0 {
		return usageError{fmt.Errorf("--top %d: want a count of groups, 0 for all", n)}
	}
	if d := c.Duration("older"); d < 0 {
		return usageError{fmt.Errorf("--older %v: an age cannot be negative", d)}
	}
	return nil
}

// inRange checks an unsigned flag against [lo, hi].
func inRange(c *cli.Context, name string, lo, hi uint64, why string) error {
	if !c.IsSet(name) {
		return nil // the default (for --max-blocks: sized by lsan)
	}
	n := uint64(c.Uint(name))
	switch {
	case n < lo:
		return usageError{fmt.Errorf("--%s %d: must be at least %d (%s)", name, n, lo, why)}
	case n > hi:
		return usageError{fmt.Errorf("--%s %d: must be at most %d", name, n, hi)}
	}
	return nil
}

// warnMissingDebugDirs says when a --debug-dir does not exist: a typo there
// would silently cost every frame its file and line.
func warnMissingDebugDirs(c *cli.Context) {
	for _, dir := range c.StringSlice("debug-dir") {
		if st, err := os.Stat(dir); err != nil {
			fmt.Fprintf(os.Stderr, "lsan: warning: --debug-dir %s: %v\n", dir, unwrapPathError(err))
		} else if !st.IsDir() {
			fmt.Fprintf(os.Stderr, "lsan: warning: --debug-dir %s: not a directory\n", dir)
		}
	}
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
