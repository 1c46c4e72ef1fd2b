package bricklayer

import (
	"bytes"
	"errors"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.podman.io/image/v5/docker/archive"
	"go.podman.io/image/v5/transports/alltransports"
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
			done := checkGoroutines(t)
			_, err = b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys, Compression: c})
			done()
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

	t.Run("store", func(t *testing.T) {
		// The store is on a file system with room for the container, but
		// not for the copy of its layer that a commit into the store
		// writes in one pass.
		env := newTestEnv(t)
		small := mountTmpfs(t, env.out, "28m")
		env.store = newTestStoreAt(t, small, "vfs")
		b, want := env.newFilledBuilder(t, "work", 8)
		writeRandomFile(t, filepath.Join(b.MountPoint(), "big"), 16<<20)
		before := readContainerState(t, b)
		images, layers := snapshotStore(t, env.store)
		dest := storeRef(t, env.store, "localhost/full:latest")

		done := checkGoroutines(t)
		_, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys})
		done()
		t.Logf("commit into a full store: %v", err)
		if err == nil || !strings.Contains(err.Error(), "no space left on device") {
			t.Errorf("commit into a full store: %v, want no space left on device", err)
		}
		if err != nil && !strings.Contains(err.Error(), before.layerID) {
			t.Errorf("commit into a full store: %q does not name layer %s", err, before.layerID)
		}
		if i, l := snapshotStore(t, env.store); i != images || l != layers {
			t.Errorf("store has %d images and %d layers after a failed commit, %d and %d before", i, l, images, layers)
		}
		assertEmptyDir(t, env.tmp)
		before.assertSame(t, b)

		// Room enough: the same commit succeeds.
		resizeTmpfs(t, small, "96m")
		if _, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys}); err != nil {
			t.Fatalf("commit once there is room: %v", err)
		}
		img := checkImage(t, dest, wantImage{Layers: 1})
		if e := img.Tree["big"]; e.Size != 16<<20 {
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
		// So do an oci-archive and a dir: directory holding one, which
		// containers/image would truncate and empty.
		oldArchive := parseRef(t, "oci-archive:"+filepath.Join(small, "old.tar")+":old")
		oldDir := dirRef(t, filepath.Join(small, "old-dir"))
		for _, ref := range []types.ImageReference{oldArchive, oldDir} {
			if _, err := other.Commit(env.ctx, ref, CommitOptions{SystemContext: env.sys}); err != nil {
				t.Fatal(err)
			}
		}
		smallBefore := fileContents(t, small)

		for _, dest := range []types.ImageReference{ociRef(t, filepath.Join(small, "new-layout"), "latest"), ociRef(t, layoutDir, "new")} {
			for _, c := range []Compression{CompressionNone, CompressionGzip, CompressionZstd} {
				done := checkGoroutines(t)
				_, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys, Compression: c})
				done()
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
		newArchive := parseRef(t, "docker-archive:"+filepath.Join(small, "new.tar")+":localhost/new:1")
		for _, ref := range []types.ImageReference{oldArchive, oldDir, newArchive} {
			done := checkGoroutines(t)
			_, err := b.Commit(env.ctx, ref, CommitOptions{SystemContext: env.sys})
			done()
			t.Logf("commit to %s: %v", ref.StringWithinTransport(), err)
			if !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("commit to %s on a full file system: %v, want ENOSPC", ref.StringWithinTransport(), err)
			}
			if err != nil && strings.Contains(err.Error(), ":  ") {
				t.Errorf("commit to %s: %q has an empty part", ref.StringWithinTransport(), err)
			}
			assertEmptyDir(t, env.tmp)
		}
		if after := fileContents(t, small); !maps.Equal(after, smallBefore) {
			t.Errorf("the file system holds %v after failed commits, %v before", after, smallBefore)
		}
		checkImage(t, oldArchive, wantImage{Layers: 1})
		checkImage(t, oldDir, wantImage{Layers: 1})

		// A dir: destination is written by copy.Image from blobs exported
		// to the temporary directory, which has room: the copy fails.
		dirDest := dirRef(t, filepath.Join(small, "dir"))
		done := checkGoroutines(t)
		_, err := b.Commit(env.ctx, dirDest, CommitOptions{SystemContext: env.sys})
		done()
		t.Logf("commit to a dir: on a full file system: %v", err)
		if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "work") {
			t.Errorf("commit to a dir: on a full file system: %v, want ENOSPC naming the container", err)
		}
		assertAbsent(t, filepath.Join(small, "dir"))
		assertEmptyDir(t, env.tmp)
		before.assertSame(t, b)

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

// TestCommitToReadOnlyFileSystem commits to destinations on a read-only
// file system: each commit fails with EROFS naming the container, and
// warns of nothing it could not clean up, since it wrote nothing.
func TestCommitToReadOnlyFileSystem(t *testing.T) {
	env := newTestEnv(t)
	ro := mountTmpfs(t, env.out, "1m")
	if out, err := exec.Command("mount", "-o", "remount,ro", ro).CombinedOutput(); err != nil {
		t.Skipf("cannot make %s read-only: %v: %s", ro, err, out)
	}
	b, _ := env.newFilledBuilder(t, "work", 9)
	warnings := captureWarnings(t)
	for _, dest := range []string{"oci:" + filepath.Join(ro, "layout") + ":x", "dir:" + filepath.Join(ro, "dir"), "oci-archive:" + filepath.Join(ro, "a.tar"), "docker-archive:" + filepath.Join(ro, "d.tar")} {
		_, err := b.Commit(env.ctx, parseRef(t, dest), CommitOptions{SystemContext: env.sys})
		if !errors.Is(err, syscall.EROFS) || !strings.Contains(err.Error(), "work") {
			t.Errorf("commit to %s: %v, want EROFS naming the container", dest, err)
		}
		if w := warnings.take(); len(w) != 0 {
			t.Errorf("commit to %s warned %q", dest, w)
		}
		assertEmptyDir(t, env.tmp)
	}
}

// uploading is true once an upload in progress has more than n bytes in
// the registry's storage.
func (r *testRegistry) uploading(n int64) bool {
	found := false
	_ = filepath.WalkDir(r.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "data" && strings.Contains(p, "_uploads") {
			if fi, err := d.Info(); err == nil && fi.Size() > n {
				found = true
				return filepath.SkipAll
			}
		}
		return nil
	})
	return found
}

// has reports whether the registry serves a manifest for repo:tag.
func (r *testRegistry) has(repo, tag string) bool {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodHead, "http://"+r.addr+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatalf("asking the registry for %s:%s: %v", repo, tag, err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// killWhen kills the registry as soon as cond holds, then runs then (if
// not nil). The returned function waits for that and says whether the kill
// happened before stop was called.
func (r *testRegistry) killWhen(cond func() bool, then func()) (stop func() bool) {
	quit := make(chan struct{})
	result := make(chan bool, 1)
	go func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				result <- false
				return
			case <-tick.C:
				if cond() {
					_ = r.cmd.Process.Kill()
					<-r.done
					if then != nil {
						then()
					}
					result <- true
					return
				}
			}
		}
	}()
	var once sync.Once
	var killed bool
	return func() bool {
		once.Do(func() {
			close(quit)
			killed = <-result
		})
		return killed
	}
}

func TestCommitRegistryDiesMidPush(t *testing.T) {
	env := newTestEnv(t)
	reg := startRegistry(t, env.dir(t, "registry"))
	b, _ := env.newFilledBuilder(t, "work", 9)
	writeRandomFile(t, filepath.Join(b.MountPoint(), "big"), 64<<20)
	before := readContainerState(t, b)
	sys := *env.sys
	sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
	destRef := func(repo string) types.ImageReference {
		ref, err := alltransports.ParseImageName("docker://" + reg.addr + "/" + repo + ":latest")
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	var exports atomic.Int32
	testHookExportStarted = func(string) { exports.Add(1) }
	t.Cleanup(func() { testHookExportStarted = nil })

	t.Run("no-retry", func(t *testing.T) {
		exports.Store(0)
		stop := reg.killWhen(func() bool { return reg.uploading(1 << 20) }, nil)
		_, err := b.Commit(env.ctx, destRef("faults/once"), CommitOptions{SystemContext: &sys, Compression: CompressionNone})
		if !stop() {
			t.Fatalf("the upload ended (%v) before the registry could be killed", err)
		}
		t.Logf("commit: %v", err)
		if err == nil {
			t.Fatal("the commit succeeded with the registry killed mid-push")
		}
		for _, s := range []string{"work", reg.addr + "/faults/once"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%q does not mention %q", err, s)
			}
		}
		if !retryable(err) {
			t.Errorf("a registry killed mid-push is not taken for a passing failure: %v", err)
		}
		if n := exports.Load(); n != 1 {
			t.Errorf("%d layer exports, want 1", n)
		}
		assertEmptyDir(t, env.tmp)
		before.assertSame(t, b)
		reg.restart()
		if reg.has("faults/once", "latest") {
			t.Error("the registry has the image of a failed push")
		}
	})

	t.Run("retry", func(t *testing.T) {
		exports.Store(0)
		// Killed mid-upload, the registry comes back on the same port with
		// the same storage while the commit waits to retry.
		stop := reg.killWhen(func() bool { return reg.uploading(1 << 20) }, func() { reg.start(reg.addr) })
		dest := destRef("faults/retried")
		start := time.Now()
		res, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: &sys, Compression: CompressionNone, RetryCount: 3, RetryDelay: 200 * time.Millisecond})
		if !stop() {
			t.Fatalf("the upload ended (%v) before the registry could be killed", err)
		}
		if err != nil {
			t.Fatalf("commit with retries: %v", err)
		}
		t.Logf("pushed %s in %s with a registry restart", res.ManifestDigest, time.Since(start).Round(time.Millisecond))
		if n := exports.Load(); n != 1 {
			t.Errorf("%d layer exports for one layer: a retry exported again", n)
		}
		assertEmptyDir(t, env.tmp)
		before.assertSame(t, b)
		if !reg.has("faults/retried", "latest") {
			t.Fatal("the registry lacks the pushed image")
		}
		report, err := Verify(env.ctx, dest, &sys)
		if err != nil {
			t.Fatal(err)
		}
		if !report.OK() || report.Images != 1 || report.ManifestDigest != res.ManifestDigest {
			t.Errorf("verifying the pushed image: %+v", report)
		}
	})

	t.Run("retries-exhausted", func(t *testing.T) {
		// The registry stays down: every try fails, and the error says how
		// many were made.
		exports.Store(0)
		reg.kill()
		start := time.Now()
		_, err := b.Commit(env.ctx, destRef("faults/down"), CommitOptions{SystemContext: &sys, RetryCount: 2, RetryDelay: 50 * time.Millisecond})
		t.Logf("commit after %s: %v", time.Since(start).Round(time.Millisecond), err)
		if err == nil || !strings.Contains(err.Error(), "after 3 tries") || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("commit to a registry that is down: %v, want connection refused after 3 tries", err)
		}
		if n := exports.Load(); n != 1 {
			t.Errorf("%d layer exports, want 1", n)
		}
		assertEmptyDir(t, env.tmp)
	})
}
