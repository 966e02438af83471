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
	switch c.String("tracer") {
	case "inproc":
		cfg.InProc = true
	case "uprobe":
	default:
		return usageError{fmt.Errorf("--tracer %q: want inproc or uprobe", c.String("tracer"))}
	}
	cfg.Interval = c.Duration("interval") // 0: the check at exit only
	// Signals for the command are caught, not acted on: lsan passes them
	// on and stays to report.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	if detectLeaksOff() {
		return runUntraced(argv, sigs)
	}
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

// runUntraced runs the command without any probe, as a binary built with
// -fsanitize=leak runs under LSAN_OPTIONS=detect_leaks=0, passing signals
// on, and ends with its status.
func runUntraced(argv []string, sigs <-chan os.Signal) error {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return commandError{fmt.Errorf("%s: command not found", argv[0]), exitNotFound}
		}
		return commandError{err, exitNotExecutable}
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-sigs:
				cmd.Process.Signal(sig)
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return commandStatus{128 + int(ws.Signal())}
		}
		return commandStatus{ee.ExitCode()}
	case err != nil:
		return err
	}
	return nil
}

// commandStatus passes the command's own exit status on, silently.
type commandStatus struct{ code int }

func (s commandStatus) Error() string { return fmt.Sprintf("exit status %d", s.code) }
