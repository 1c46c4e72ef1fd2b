package bricklayer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.podman.io/image/v5/transports/alltransports"
)

// Bad input to the library: every error quotes the input at fault, and
// nothing is changed. The CLI's own checks are in cmd/bricklayer
// (TestBadInput), the parsers' fuzz targets in the fuzz_test.go files.

func TestBadBaseImage(t *testing.T) {
	env := newTestEnv(t)
	for _, from := range []string{
		"docker://", "docker://UPPER/x", "nosuch://x", "UPPER", "a b", "app::tag", "-app", "oci:",
		"containers-storage:[bad", "localhost/missing:latest", "sha256:0123", "\xff", "app\x00",
		"oci:" + filepath.Join(t.TempDir(), "none") + ":x", "dir:" + filepath.Join(t.TempDir(), "none"),
	} {
		_, err := NewBuilder(env.ctx, env.store, BuilderOptions{FromImage: from, Container: "c"})
		if err == nil {
			t.Errorf("NewBuilder from %q succeeded", from)
			continue
		}
		if !strings.Contains(err.Error(), strconv.Quote(from)) {
			t.Errorf("NewBuilder from %q: %q does not quote it", from, err)
		}
		if !errors.Is(err, ErrImageNotFound) {
			t.Errorf("NewBuilder from %q: %q is not ErrImageNotFound", from, err)
		}
	}
	// A pull that was cancelled did not find the image missing.
	cancelled, cancel := context.WithCancel(env.ctx)
	cancel()
	_, err := NewBuilder(cancelled, env.store, BuilderOptions{FromImage: "oci:" + filepath.Join(t.TempDir(), "none") + ":x", Container: "c"})
	if err == nil || errors.Is(err, ErrImageNotFound) {
		t.Errorf("NewBuilder with a cancelled context: %v, want an error that is not ErrImageNotFound", err)
	}
	if ctrs, err := env.store.Containers(); err != nil || len(ctrs) != 0 {
		t.Errorf("failed NewBuilder calls left containers %v (%v)", ctrs, err)
	}
}

func TestBadAddOptions(t *testing.T) {
	env := newTestEnv(t)
	b, _ := env.newFilledBuilder(t, "work", 60)
	if err := os.MkdirAll(filepath.Join(b.MountPoint(), "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.MountPoint(), "etc", "passwd"), []byte("alice:x:1000:1000::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(env.dir(t, "src"), "file")
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := listFiles(t, b.MountPoint())
	for _, tc := range []struct {
		opts    AddOptions
		sources []string
		quote   string
		is      error
	}{
		{AddOptions{Chown: "bob"}, []string{src}, "bob", ErrUnknownUser},
		{AddOptions{Chown: "alice:nogroup"}, []string{src}, "nogroup", ErrUnknownUser},
		{AddOptions{Chown: "a:b:c"}, []string{src}, "a:b:c", ErrInvalidChown},
		{AddOptions{Chown: ":1"}, []string{src}, ":1", ErrInvalidChown},
		{AddOptions{Chown: "4294967296"}, []string{src}, "4294967296", ErrInvalidChown},
		{AddOptions{Chmod: "999"}, []string{src}, "999", ErrInvalidChmod},
		{AddOptions{Chmod: "u+x"}, []string{src}, "u+x", ErrInvalidChmod},
		{AddOptions{Chmod: "77777"}, []string{src}, "77777", ErrInvalidChmod},
		{AddOptions{}, []string{src + "-missing"}, src + "-missing", ErrNoSource},
		{AddOptions{}, []string{"[unclosed"}, "[unclosed", nil},
	} {
		err := b.Copy(env.ctx, "/dest/", tc.opts, tc.sources...)
		if err == nil {
			t.Errorf("Copy with %+v of %q succeeded", tc.opts, tc.sources)
			continue
		}
		if !strings.Contains(err.Error(), strconv.Quote(tc.quote)) {
			t.Errorf("Copy with %+v: %q does not quote %q", tc.opts, err, tc.quote)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("Copy with %+v: %v is not %v", tc.opts, err, tc.is)
		}
	}
	if after := listFiles(t, b.MountPoint()); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("failed copies changed the container: %v, then %v", before, after)
	}
}

// TestBadConfigValues checks that the config API refuses invalid ports,
// signals and changes with an error quoting them, and changes nothing.
// (`CMD ["unterminated` is not among them: as in a Dockerfile, what is not
// a JSON array is a shell-form command.)
func TestBadConfigValues(t *testing.T) {
	env := newTestEnv(t)
	b, _ := env.newFilledBuilder(t, "work", 61)
	before := b.OCIConfig()
	for _, p := range []string{"", "99999", "0", "-1", "80/xyz", "abc", "80-", "90-80", "80/tcp/udp", "65536/udp", "\xff"} {
		if err := b.SetPort(p); err == nil || !strings.Contains(err.Error(), strconv.Quote(p)) {
			t.Errorf("SetPort(%q): %v, want an error quoting it", p, err)
		}
	}
	for _, s := range []string{"SIGNOPE", "0", "999", "-9", "SIG", "TERM TERM", "\xff"} {
		if err := b.SetStopSignal(s); err == nil || !strings.Contains(err.Error(), strconv.Quote(s)) {
			t.Errorf("SetStopSignal(%q): %v, want an error quoting it", s, err)
		}
	}
	for _, c := range []string{"", "BOGUS x", "FROM alpine", "RUN rm -rf /", "COPY a b", "EXPOSE notaport", "STOPSIGNAL SIGNOPE",
		"ENV", "ONBUILD FOO", "WORKDIR", "HEALTHCHECK --interval=bogus CMD true"} {
		if err := b.ApplyChange(c); err == nil || !strings.Contains(err.Error(), strconv.Quote(c)) {
			t.Errorf("ApplyChange(%q): %v, want an error quoting it", c, err)
		}
	}
	a, _ := json.Marshal(before)
	z, _ := json.Marshal(b.OCIConfig())
	if !bytes.Equal(a, z) {
		t.Errorf("refused values changed the config:\nbefore %s\nafter %s", a, z)
	}
}

// A reference to a layout without a path ("oci:") fails without writing
// anything in the working directory.
func TestCommitToLayoutWithoutPath(t *testing.T) {
	env := newTestEnv(t)
	b, _ := env.newFilledBuilder(t, "work", 62)
	wd := env.dir(t, "wd")
	if err := os.MkdirAll(wd, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(wd)
	for _, s := range []string{"oci:", "oci::tag"} {
		ref, err := alltransports.ParseImageName(s)
		if err != nil {
			t.Logf("%q does not parse: %v", s, err)
			continue
		}
		if _, err := b.Commit(env.ctx, ref, CommitOptions{SystemContext: env.sys}); err == nil {
			t.Errorf("commit to %q succeeded", s)
		}
		assertEmptyDir(t, wd)
	}
}
