package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignalsEndCommitCleanly sends Ctrl-C's SIGINT, SIGTERM and a
// hang-up's SIGHUP to a commit busy exporting a layer: each ends it with
// exit status 1, an error saying it was cancelled, and nothing left behind
// (no layout, no temporary files).
func TestSignalsEndCommitCleanly(t *testing.T) {
	c, tmp := newCLI(t)
	c.ok("from", "scratch", "--name", "sig")
	big := make([]byte, 96<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(tmp, "src", "big"), string(big), 0o644)
	c.ok("copy", "sig", filepath.Join(tmp, "src", "big"), "/big")

	nohup, _ := exec.LookPath("nohup")
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, 0} {
		// 0: SIGHUP under nohup, which the commit must not take for a
		// request to stop.
		underNohup := sig == 0
		if underNohup {
			if nohup == "" {
				continue
			}
			sig = syscall.SIGHUP
		}
		layout := filepath.Join(tmp, "layout-"+strings.ToLower(sig.String()))
		args := []string{c.bin, "commit", "--compression", "zstd", "--compression-level", "19", "sig", "oci:" + layout + ":x"}
		if underNohup {
			layout += "-nohup"
			args = append([]string{nohup}, args[:len(args)-1]...)
			args = append(args, "oci:"+layout+":x")
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = c.env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Once the layer's blob is being written, the export is under way.
		deadline := time.Now().Add(30 * time.Second)
		for {
			partials, _ := filepath.Glob(filepath.Join(layout, "blobs", "sha256", ".layer-*"))
			if len(partials) > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		if underNohup {
			if err != nil {
				t.Errorf("under nohup, a commit sent SIGHUP: %v, stderr %q; want it to go on", err, stderr.String())
			}
			continue
		}
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 || !strings.Contains(stderr.String(), "context canceled") {
			t.Errorf("%s: %v, stderr %q; want exit status 1 and the commit cancelled", sig, err, stderr.String())
		}
		if _, err := os.Stat(layout); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the layout the commit made is still there (%v)", sig, err)
		}
		if entries, err := os.ReadDir(filepath.Join(tmp, "tmp")); err != nil || len(entries) != 0 {
			t.Errorf("%s: left in TMPDIR: %v %v", sig, entries, err)
		}
	}
}

// TestSecondSignalEndsAStuckCommand: verify of a layout whose layer blob is
// a FIFO blocks in open(), where no context reaches; a second Ctrl-C
// ends it at once (it went on until SIGKILL).
func TestSecondSignalEndsAStuckCommand(t *testing.T) {
	c, tmp := newCLI(t)
	c.ok("from", "scratch", "--name", "stuck")
	writeFile(t, filepath.Join(tmp, "src", "f"), "f\n", 0o644)
	c.ok("copy", "stuck", filepath.Join(tmp, "src", "f"), "/f")
	layout := filepath.Join(tmp, "layout")
	c.ok("commit", "-q", "--compression", "none", "stuck", "oci:"+layout+":x")
	blobs, err := filepath.Glob(filepath.Join(layout, "blobs", "sha256", "*"))
	if err != nil || len(blobs) == 0 {
		t.Fatal(blobs, err)
	}
	// The biggest blob is the layer.
	layer, size := "", int64(-1)
	for _, b := range blobs {
		if s := mustSize(t, b); s > size {
			layer, size = b, s
		}
	}
	if err := os.Remove(layer); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(layer, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(c.bin, "verify", "oci:"+layout+":x")
	cmd.Env = c.env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(500 * time.Millisecond)
	for range 2 {
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("verify of a layout with a FIFO for a blob succeeded")
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("verify went on after two interrupts")
	}
}

func mustSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
