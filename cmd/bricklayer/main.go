// Command bricklayer makes container images from working containers: it
// creates a container from an image or from scratch, copies files into it,
// sets its config and commits it to any containers/image transport.
//
// Exit status: 0 on success, 1 when a command failed while running (an image
// that cannot be found, a registry that refuses a push, a full disk), 2 when
// the command line itself is wrong (unknown command or flag, missing or extra
// arguments, a flag value that cannot be parsed). Errors are printed to
// stderr as one line that starts with "bricklayer: ".
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"go.podman.io/storage/pkg/reexec"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	// containers/storage re-executes this binary to apply layers in a chroot.
	if reexec.Init() {
		return
	}
	limitMemory()
	// A hang-up (a closed terminal or ssh session) ends a commit as Ctrl-C
	// does: cleanly, leaving no temporary files.
	signals := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		signals = append(signals, syscall.SIGHUP) // not under nohup
	}
	ctx, stop := signal.NotifyContext(context.Background(), signals...)
	go func() {
		// A command stuck where the context is not looked at (an open()
		// of a FIFO in an image directory) still ends: a second signal
		// kills it at once, and the first one after stopGrace.
		<-ctx.Done()
		stop()
		time.Sleep(stopGrace)
		fmt.Fprintf(os.Stderr, "bricklayer: still running %s after the signal; exiting\n", stopGrace)
		os.Exit(exitFailure)
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// stopGrace is how long a command may take to end after a signal.
const stopGrace = 30 * time.Second

// defaultMemoryLimit is the Go heap's soft limit when GOMEMLIMIT is not
// set. A commit streams its layers through fixed-size buffers, so its live
// heap is small whatever the layer size; the limit makes the garbage
// collector keep the process near that instead of letting the heap double.
const defaultMemoryLimit = 32 << 20

func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := newApp()
	defer a.close()
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	msg := strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
	var f *failure
	if errors.As(err, &f) {
		fmt.Fprintf(stderr, "bricklayer: %s\n", msg)
		return exitFailure
	}
	// Everything else comes from the command line: cobra's own errors
	// (unknown command or flag, wrong number of arguments) and the values
	// our commands refuse before doing anything.
	path := "bricklayer"
	if cmd != nil && cmd != root {
		path = cmd.CommandPath()
		msg = cmd.Name() + ": " + msg
	}
	fmt.Fprintf(stderr, "bricklayer: %s (see '%s --help')\n", msg, path)
	return exitUsage
}

// failure marks an error that happened while a command ran, as opposed to an
// error in the command line.
type failure struct{ err error }

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// usageError is an error in the command line found by a command itself.
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

// usagef returns a usage error.
func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}
