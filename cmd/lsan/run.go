package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/lsan-project/lsan/session"
)

// Shell statuses for a command that cannot be started.
const (
	exitNotExecutable = 126
	exitNotFound      = 127
)

// commandError ends lsan run with the shell's status, after one line.
type commandError struct {
	err  error
	code int
}

func (e commandError) Error() string { return e.err.Error() }

// runAction is `lsan run [flags] -- CMD [ARGS...]`: the drop-in for a
// binary built with -fsanitize=leak.
func runAction(c *cli.Context) error {
	argv := c.Args().Slice()
	if len(argv) == 0 {
		return usageError{errors.New("lsan run needs a command: lsan run [flags] -- CMD [ARGS...]")}
	}
	exe, _ := exec.LookPath(argv[0])
	cfg, closeOut, err := configFromFlags(c, exe)
	if err != nil {
		return err
	}
	defer closeOut()
	cfg.Tracer.FollowForks = c.Bool("follow-forks")
	// Signals for the command are caught, not acted on: lsan passes them
	// on and stays to report.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	res, err := session.RunCommand(cfg, argv, sigs)
	switch {
	case errors.Is(err, session.ErrNotFound):
		return commandError{err, exitNotFound}
	case errors.Is(err, session.ErrNotExecutable):
		return commandError{err, exitNotExecutable}
	case err != nil:
		return err
	}
	if res.Incomplete {
		return incompleteData{}
	}
	if res.Leaks {
		return leaksFound{exitCode(c)}
	}
	if res.Status != 0 {
		return commandStatus{res.Status}
	}
	return nil
}

// commandStatus passes the command's own exit status on, silently.
type commandStatus struct{ code int }

func (s commandStatus) Error() string { return fmt.Sprintf("exit status %d", s.code) }
