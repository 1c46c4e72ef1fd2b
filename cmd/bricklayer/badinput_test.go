package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestBadInput runs the built binary with malformed arguments: each fails
// with exit status 1 or 2 and one line on stderr that quotes the argument
// at fault, and changes nothing.
func TestBadInput(t *testing.T) {
	c, tmp := newCLI(t)
	tmpDir := filepath.Join(tmp, "tmp")
	c.ok("from", "scratch", "--name", "ctr")
	src := filepath.Join(tmp, "src")
	writeFile(t, filepath.Join(src, "f"), "f\n", 0o644)
	before := c.ok("inspect", "--json", "ctr")

	// quoted is how an error must show the argument.
	quoted := strconv.Quote
	for _, tc := range []struct {
		args []string
		want string // in the error line
	}{
		// References and names.
		{[]string{"from", "docker://"}, quoted("docker://")},
		{[]string{"from", "nosuch://x"}, quoted("nosuch://x")},
		{[]string{"from", "UPPER/Case"}, quoted("UPPER/Case")},
		{[]string{"from", "a b"}, quoted("a b")},
		{[]string{"commit", "ctr", "docker://"}, quoted("docker://")},
		{[]string{"commit", "ctr", "docker://UPPER/x:y"}, quoted("docker://UPPER/x:y")},
		{[]string{"commit", "ctr", "nosuch://x"}, quoted("nosuch://x")},
		{[]string{"commit", "ctr", "app::tag"}, quoted("app::tag")},
		{[]string{"commit", "ctr", "-app"}, ""},
		{[]string{"commit", "ctr", "oci:"}, quoted("oci:")},
		{[]string{"commit", "ctr", "containers-storage:[bad"}, quoted("containers-storage:[bad")},
		{[]string{"commit", "no-such-ctr", "oci:" + filepath.Join(tmp, "x")}, quoted("no-such-ctr")},
		{[]string{"inspect", "nosuch://x"}, quoted("nosuch://x")},
		{[]string{"rmi", "UPPER"}, quoted("UPPER")},
		// Commit options.
		{[]string{"commit", "--compression", "bzip2", "ctr", "x"}, quoted("bzip2")},
		{[]string{"commit", "--format", "v1", "ctr", "x"}, quoted("v1")},
		{[]string{"commit", "--jobs", "-1", "ctr", "x"}, "-1"},
		{[]string{"commit", "--retry", "-1", "ctr", "x"}, "-1"},
		{[]string{"commit", "--retry-delay", "soon", "ctr", "x"}, quoted("soon")},
		{[]string{"commit", "--timestamp", "yesterday", "ctr", "x"}, quoted("yesterday")},
		{[]string{"commit", "--timestamp", "-1", "ctr", "x"}, "-1"},
		{[]string{"commit", "--source-date-epoch", "-5", "ctr", "x"}, "-5"},
		{[]string{"commit", "--authfile", filepath.Join(tmp, "no-auth.json"), "ctr", "x"}, quoted(filepath.Join(tmp, "no-auth.json"))},
		{[]string{"from", "--authfile", filepath.Join(tmp, "no-auth.json"), "scratch"}, quoted(filepath.Join(tmp, "no-auth.json"))},
		{[]string{"--log-level", "loud", "containers"}, quoted("loud")},
		// Owners and modes.
		{[]string{"copy", "--chown", "nosuchuser", "ctr", src, "/"}, quoted("nosuchuser")},
		{[]string{"copy", "--chown", "0:nosuchgroup", "ctr", src, "/"}, quoted("nosuchgroup")},
		{[]string{"copy", "--chown", "a:b:c", "ctr", src, "/"}, quoted("a:b:c")},
		{[]string{"copy", "--chown", "99999999999", "ctr", src, "/"}, quoted("99999999999")},
		{[]string{"copy", "--chmod", "999", "ctr", src, "/"}, quoted("999")},
		{[]string{"copy", "--chmod", "u+x", "ctr", src, "/"}, quoted("u+x")},
		{[]string{"copy", "ctr", filepath.Join(tmp, "missing"), "/"}, quoted(filepath.Join(tmp, "missing"))},
		{[]string{"add", "ctr", "http://example.com/x.tar", "/"}, "http://example.com/x.tar"},
		// Config values the CLI itself checks.
		{[]string{"config", "ctr", "--env", "NOEQUALS"}, quoted("NOEQUALS")},
		{[]string{"config", "ctr", "--label", "=v"}, quoted("=v")},
		{[]string{"config", "ctr", "--cmd", `["unterminated`}, quoted(`["unterminated`)},
		{[]string{"config", "ctr", "--port", ""}, quoted("")},
	} {
		stdout, stderr, code := c.run(tc.args...)
		line := strings.TrimSuffix(stderr, "\n")
		switch {
		case code != 1 && code != 2:
			t.Errorf("bricklayer %q: exit %d, want 1 or 2 (stdout %q, stderr %q)", tc.args, code, stdout, stderr)
		case stdout != "":
			t.Errorf("bricklayer %q: stdout %q, want nothing", tc.args, stdout)
		case strings.Contains(line, "\n") || !strings.HasPrefix(line, "bricklayer: "):
			t.Errorf("bricklayer %q: stderr %q, want one line starting \"bricklayer: \"", tc.args, stderr)
		case !strings.Contains(line, tc.want):
			t.Errorf("bricklayer %q: %q does not quote %s", tc.args, line, tc.want)
		}
	}

	// Owners and modes that do not parse are usage errors.
	for _, args := range [][]string{
		{"copy", "--chown", "a:b:c", "ctr", src, "/"},
		{"copy", "--chmod", "999", "ctr", src, "/"},
		{"add", "--chmod", "u+x", "ctr", src, "/"},
	} {
		if _, stderr, code := c.run(args...); code != 2 {
			t.Errorf("bricklayer %q: exit %d (%s), want 2", args, code, stderr)
		}
	}

	// Values the config API checks: --change instructions, ports, signals.
	if _, stderr, code := c.run("config", "ctr", "--change", "ENV A=b"); code != 0 {
		t.Fatalf("config --change 'ENV A=b': exit %d: %s", code, stderr)
	}
	before = c.ok("inspect", "--json", "ctr")
	for _, args := range [][]string{
		{"--change", "BOGUS x"},
		{"--change", "FROM alpine"},
		{"--change", "RUN rm -rf /"},
		{"--change", "EXPOSE notaport"},
		{"--change", "STOPSIGNAL SIGNOPE"},
		{"--change", "ENV"},
		{"--port", "99999"},
		{"--port", "0"},
		{"--port", "80/xyz"},
		{"--port", "abc"},
		{"--stop-signal", "SIGNOPE"},
		{"--stop-signal", "0"},
		{"--stop-signal", "999"},
	} {
		// A value that does not parse is a usage error (exit 2), which
		// names the container it was for.
		args := append([]string{"config", "ctr"}, args...)
		_, stderr, code := c.run(args...)
		if code != 2 {
			t.Errorf("bricklayer %q: exit %d, want 2", args, code)
		}
		if !strings.Contains(stderr, strconv.Quote(args[3])) || !strings.Contains(stderr, "ctr") {
			t.Errorf("bricklayer %q: %q does not quote %q and name the container", args, stderr, args[3])
		}
	}
	if after := c.ok("inspect", "--json", "ctr"); after != before {
		t.Errorf("failed commands changed the container:\nbefore %s\nafter %s", before, after)
	}
	if entries, err := os.ReadDir(tmpDir); err != nil || len(entries) != 0 {
		t.Errorf("left behind in TMPDIR: %v %v", entries, err)
	}
}
