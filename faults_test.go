package bricklayer

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.podman.io/image/v5/docker/archive"
	"go.podman.io/image/v5/types"
)

// Faults of the machine a commit runs on: a full disk. A failed commit
// names what it was writing, leaves no temporary file and no partial image,
// does not touch the container, and the same commit succeeds once the cause
// is gone.

// mountTmpfs mounts a tmpfs of size (mount's syntax: "8m") on a new
// directory and unmounts it when the test ends. It skips the test when the
// mount is not possible (not root, no mount command, a sandbox).
func mountTmpfs(t *testing.T, parent, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir, err := os.MkdirTemp(parent, "tmpfs-")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs on %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("unmounting the tmpfs on %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// resizeTmpfs changes the size of the tmpfs mounted on dir.
func resizeTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "remount,size="+size, dir).CombinedOutput(); err != nil {
		t.Fatalf("resizing the tmpfs on %s: %v: %s", dir, err, out)
	}
}

// containerState is what a failed commit must leave as it was: the saved
// state file's bytes and the container's store records.
type containerState struct {
	stateFile []byte
	layerID   string
	files     []string
}

func readContainerState(t *testing.T, b *Builder) containerState {
	t.Helper()
	ctr, err := b.store.Container(b.ContainerID())
	if err != nil {
		t.Fatal(err)
	}
	dir, err := b.store.ContainerDirectory(ctr.ID)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	return containerState{stateFile: data, layerID: ctr.LayerID, files: listFiles(t, b.MountPoint())}
}

func (s containerState) assertSame(t *testing.T, b *Builder) {
	t.Helper()
	now := readContainerState(t, b)
	if !bytes.Equal(now.stateFile, s.stateFile) {
		t.Errorf("the saved state changed:\nbefore %s\nafter %s", s.stateFile, now.stateFile)
	}
	if now.layerID != s.layerID {
		t.Errorf("the container's layer changed from %s to %s", s.layerID, now.layerID)
	}
	if strings.Join(now.files, "\n") != strings.Join(s.files, "\n") {
		t.Errorf("the container's files changed: %v, then %v", s.files, now.files)
	}
}

func TestCommitFullDisk(t *testing.T) {
	t.Run("temporary-directory", func(t *testing.T) {
		// The temporary directory, where blobs for a docker-archive are
		// exported, holds 8 MiB; the layer is 16 MiB of random bytes.
		env := newTestEnv(t)
		small := mountTmpfs(t, env.out, "8m")
		env.sys.BigFilesTemporaryDir = small
		t.Setenv("TMPDIR", small)
		b, want := env.newFilledBuilder(t, "work", 5)
		writeRandomFile(t, filepath.Join(b.MountPoint(), "big"), 16<<20)
		before := readContainerState(t, b)
		images, layers := snapshotStore(t, env.store)

		archivePath := filepath.Join(env.dir(t, "archive"), "image.tar")
		if err := os.MkdirAll(filepath.Dir(archivePath), 0o755); err != nil {
			t.Fatal(err)
		}
		dest, err := archive.ParseReference(archivePath + ":localhost/full:latest")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []Compression{CompressionNone, CompressionGzip, CompressionZstd} {
			_, err = b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys, Compression: c})
			t.Logf("commit with %s: %v", c, err)
			if !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("commit with %s into a full temporary directory: %v, want ENOSPC", c, err)
			}
			if err != nil && !strings.Contains(err.Error(), before.layerID) {
				t.Errorf("commit with %s: %q does not name layer %s", c, err, before.layerID)
			}
			assertEmptyDir(t, small)
			assertAbsent(t, archivePath)
			before.assertSame(t, b)
			if i, l := snapshotStore(t, env.store); i != images || l != layers {
				t.Errorf("store has %d images and %d layers after a failed commit, %d and %d before", i, l, images, layers)
			}
		}

		// Room enough: the same commit succeeds.
		resizeTmpfs(t, small, "64m")
		if _, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys}); err != nil {
			t.Fatalf("commit once there is room: %v", err)
		}
		assertEmptyDir(t, small)
		img := checkImage(t, dest, wantImage{Layers: 1})
		e := img.Tree["big"]
		if e.Size != 16<<20 {
			t.Errorf("big is %d bytes in the image, want %d", e.Size, 16<<20)
		}
		delete(img.Tree, "big")
		compareTrees(t, want, img.Tree)
		before.assertSame(t, b)
	})

	t.Run("destination", func(t *testing.T) {
		// The destination is an OCI layout on a full file system: the layer
		// is exported straight into it.
		env := newTestEnv(t)
		small := mountTmpfs(t, env.out, "8m")
		b, want := env.newFilledBuilder(t, "work", 6)
		writeRandomFile(t, filepath.Join(b.MountPoint(), "big"), 16<<20)
		before := readContainerState(t, b)

		// A layout that already holds an image keeps it, untouched.
		layoutDir := filepath.Join(small, "layout")
		old := ociRef(t, layoutDir, "old")
		if err := os.WriteFile(filepath.Join(small, "filler"), make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		other, _ := env.newFilledBuilder(t, "other", 7)
		if _, err := other.Commit(env.ctx, old, CommitOptions{SystemContext: env.sys}); err != nil {
			t.Fatal(err)
		}
		layoutBefore := listFiles(t, layoutDir)

		for _, dest := range []types.ImageReference{ociRef(t, filepath.Join(small, "new-layout"), "latest"), ociRef(t, layoutDir, "new")} {
			for _, c := range []Compression{CompressionNone, CompressionGzip} {
				_, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys, Compression: c})
				t.Logf("commit with %s to %s: %v", c, dest.StringWithinTransport(), err)
				if !errors.Is(err, syscall.ENOSPC) {
					t.Errorf("commit with %s to a full layout: %v, want ENOSPC", c, err)
				}
				if err != nil && !strings.Contains(err.Error(), before.layerID) {
					t.Errorf("commit with %s: %q does not name layer %s", c, err, before.layerID)
				}
				assertEmptyDir(t, env.tmp)
				before.assertSame(t, b)
			}
		}
		assertAbsent(t, filepath.Join(small, "new-layout"))
		if after := listFiles(t, layoutDir); strings.Join(after, " ") != strings.Join(layoutBefore, " ") {
			t.Errorf("the layout holds %v after failed commits, %v before", after, layoutBefore)
		}
		checkImage(t, old, wantImage{Layers: 1})

		resizeTmpfs(t, small, "64m")
		dest := ociRef(t, layoutDir, "new")
		if _, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys}); err != nil {
			t.Fatalf("commit once there is room: %v", err)
		}
		img := checkImage(t, dest, wantImage{Layers: 1})
		delete(img.Tree, "big")
		compareTrees(t, want, img.Tree)
		checkImage(t, old, wantImage{Layers: 1})
	})
}
