package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// TestCommitWaitsForAnotherProcess: a commit into an OCI layout waits while
// another process holds the layout's lock, then keeps the tag that process
// wrote. The other process is played by this test: it takes the flock a
// commit takes, and adds a tag to the index before letting go.
func TestCommitWaitsForAnotherProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	tmp := t.TempDir()
	c := &cli{t: t, bin: buildCLI(t), env: []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + tmp, "TMPDIR=" + tmp, "BRICKLAYER_ROOT=" + filepath.Join(tmp, "store"),
	}}
	c.ok("from", "scratch", "--name", "w")
	layout := filepath.Join(tmp, "layout")
	c.ok("commit", "-q", "w", "oci:"+layout+":one")

	d, err := os.Open(layout)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(c.bin, "commit", "-q", "w", "oci:"+layout+":two")
	cmd.Env = c.env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		t.Fatalf("the commit exited (%v) while another process held the layout", err)
	case <-time.After(2 * time.Second):
	}

	index := readIndex(t, layout)
	other := index.Manifests[0]
	other.Annotations = map[string]string{v1.AnnotationRefName: "three"}
	index.Manifests = append(index.Manifests, other)
	data, err := json.Marshal(index)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(layout, "index.json"), string(data), 0o644)
	d.Close() // drops the lock

	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the commit failed: %v", err)
		}
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatal("the commit still waits after the lock was dropped")
	}
	var tags []string
	for _, m := range readIndex(t, layout).Manifests {
		tags = append(tags, m.Annotations[v1.AnnotationRefName])
	}
	slices.Sort(tags)
	if want := []string{"one", "three", "two"}; !slices.Equal(tags, want) {
		t.Errorf("layout tags %q, want %q", tags, want)
	}
}

func readIndex(t *testing.T, layout string) v1.Index {
	t.Helper()
	var index v1.Index
	readJSON(t, filepath.Join(layout, "index.json"), &index)
	return index
}
