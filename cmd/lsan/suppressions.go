package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/lsan-project/lsan/internal/lsanoptions"
	"github.com/lsan-project/lsan/suppressions"
)

// loadSuppressions builds the rule set: the built-in defaults (unless
// --no-default-suppressions), then every -s file, then LSAN_OPTIONS'
// suppressions file. Warnings (rules of other sanitizers) go to stderr;
// malformed lines are errors naming file:line.
func loadSuppressions(c *cli.Context, opts lsanoptions.Options, targetExe string) (*suppressions.Set, error) {
	var set *suppressions.Set
	if !c.Bool("no-default-suppressions") {
		set = suppressions.Defaults()
	}
	paths := c.StringSlice("suppressions")
	if f := opts.Suppressions; f != "" {
		wd, _ := os.Getwd()
		paths = append(paths, suppressions.ResolveSuppressionsPath(f, wd, targetExe))
	}
	user, warnings, err := suppressions.LoadFiles(paths...)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		fmt.Fprintf(os.Stderr, "lsan: warning: %s\n", w)
	}
	return set.Merge(user), nil
}
