package testutil

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RequireTool returns the path of the external program name, looked up in
// $PATH and then in $GOPATH/bin (where `go install` puts crane). When it is
// absent the test is skipped with a message saying how to get it.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range goBinDirs() {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Skipf("%s is not installed (in $PATH or $GOPATH/bin): integration test skipped; .ci/run installs it", name)
	return ""
}

// goBinDirs are where `go install` may have put a program.
func goBinDirs() []string {
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	for _, p := range filepath.SplitList(gopath) {
		if p != "" {
			dirs = append(dirs, filepath.Join(p, "bin"))
		}
	}
	return dirs
}

// Run runs the program at path with args and the environment env (added to
// the test's own) and returns its standard output. A failure ends the test
// with the command line and its standard error.
func Run(t testing.TB, env []string, path string, args ...string) []byte {
	t.Helper()
	out, err := RunErr(t, env, path, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// RunErr is [Run] that returns the failure, with the command line and its
// standard error, instead of ending the test.
func RunErr(t testing.TB, env []string, path string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("ran %s %s (%.2fs)", filepath.Base(path), strings.Join(args, " "), time.Since(start).Seconds())
	if err != nil {
		return stdout.Bytes(), &RunError{Command: append([]string{path}, args...), Err: err, Stderr: stderr.String()}
	}
	return stdout.Bytes(), nil
}

// RunError is a failed command.
type RunError struct {
	// Command is the program and its arguments.
	Command []string
	// Err is what exec reported (usually an *exec.ExitError).
	Err error
	// Stderr is what the program wrote to its standard error.
	Stderr string
}

func (e *RunError) Error() string {
	return "running " + strings.Join(e.Command, " ") + ": " + e.Err.Error() + "\n" + strings.TrimSpace(e.Stderr)
}

func (e *RunError) Unwrap() error { return e.Err }
