package bricklayer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bricklayer/bricklayer/docker"
	digest "github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/directory"
	"go.podman.io/image/v5/transports/alltransports"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
	"go.uber.org/goleak"
)

// Every failing commit must return an error that says what failed and
// leave nothing behind: no temporary files, no partial image.

// snapshotStore counts the store's images and layers.
func snapshotStore(t *testing.T, store storage.Store) (images, layers int) {
	t.Helper()
	imgs, err := store.Images()
	if err != nil {
		t.Fatal(err)
	}
	ls, err := store.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return len(imgs), len(ls)
}

// failCommit commits b to a new OCI layout and to containers-storage,
// expecting both to fail with an error that is wantErr and mentions every
// string of mention, and to leave no trace.
func (env *testEnv) failCommit(t *testing.T, b *Builder, opts CommitOptions, wantErr error, mention ...string) {
	t.Helper()
	opts.SystemContext = env.sys
	dir := env.dir(t, "oci")
	images, layers := snapshotStore(t, env.store)
	for _, dest := range []types.ImageReference{ociRef(t, dir, "latest"), storeRef(t, env.store, "localhost/failed:latest")} {
		_, err := b.Commit(env.ctx, dest, opts)
		if err == nil {
			t.Fatalf("commit to %s succeeded", dest.Transport().Name())
		}
		t.Logf("commit to %s: %v", dest.Transport().Name(), err)
		if wantErr != nil && !errors.Is(err, wantErr) {
			t.Errorf("commit to %s: %v is not %v", dest.Transport().Name(), err, wantErr)
		}
		for _, s := range mention {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("commit to %s: %q does not mention %q", dest.Transport().Name(), err, s)
			}
		}
		assertEmptyDir(t, env.tmp)
	}
	assertAbsent(t, dir)
	if i, l := snapshotStore(t, env.store); i != images || l != layers {
		t.Errorf("store has %d images and %d layers after failed commits, %d and %d before", i, l, images, layers)
	}
	if _, err := env.store.Image("localhost/failed:latest"); err == nil {
		t.Errorf("the failed image is in the store")
	}
}

func TestOpenUnknownContainer(t *testing.T) {
	store := newTestStore(t)
	_, err := OpenBuilder(store, "no-such-container")
	if !errors.Is(err, ErrContainerNotFound) || !strings.Contains(err.Error(), "no-such-container") {
		t.Errorf("got %v, want ErrContainerNotFound naming the container", err)
	}
}

func TestCommitFailures(t *testing.T) {
	t.Run("bad-options", func(t *testing.T) {
		env := newTestEnv(t)
		b, _ := env.newFilledBuilder(t, "work", 4)
		env.failCommit(t, b, CommitOptions{ManifestType: docker.V2S2MediaTypeManifest, Compression: CompressionZstd}, ErrUnsupportedCompression, "work", "zstd")
		env.failCommit(t, b, CommitOptions{Compression: Compression(42)}, ErrUnsupportedCompression, "work", "42")
		env.failCommit(t, b, CommitOptions{ManifestType: "application/x-nonsense"}, ErrUnsupportedManifestType, "work", "application/x-nonsense")
		if _, err := b.ImageRef(CommitOptions{ManifestType: docker.V2S2MediaTypeManifest, Compression: CompressionZstd}); !errors.Is(err, ErrUnsupportedCompression) {
			t.Errorf("ImageRef with zstd and Docker v2s2: %v", err)
		}
	})

	t.Run("container-deleted", func(t *testing.T) {
		env := newTestEnv(t)
		b, _ := env.newFilledBuilder(t, "work", 4)
		other, err := OpenBuilder(env.store, "work")
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Delete(); err != nil {
			t.Fatal(err)
		}
		env.failCommit(t, b, CommitOptions{}, ErrContainerNotFound, "work")
		// The builder's other methods that reach the store say the same.
		src := filepath.Join(env.tmp, "src")
		if err := os.WriteFile(src, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		for what, call := range map[string]func() error{
			"Mount":   func() error { _, err := b.Mount(); return err },
			"Unmount": b.Unmount,
			"Save":    b.Save,
			"Delete":  b.Delete,
			"Copy":    func() error { return b.Copy(env.ctx, "/x", AddOptions{}, src) },
		} {
			if err := call(); !errors.Is(err, ErrContainerNotFound) || !strings.Contains(err.Error(), "work") {
				t.Errorf("%s after the container was deleted: %v, want ErrContainerNotFound naming it", what, err)
			}
		}
		os.Remove(src)
	})

	t.Run("layer-record-removed", func(t *testing.T) {
		// Another process removes the base image's layer from the store's
		// records (as a crash or a careless tool could).
		env := newTestEnv(t)
		env.commitBase(t, "a", "localhost/a:latest", 4)
		checkImage(t, storeRef(t, env.store, "localhost/a:latest"), wantImage{Layers: 1})
		b, err := NewBuilder(env.ctx, env.store, BuilderOptions{FromImage: "localhost/a:latest", Container: "b"})
		if err != nil {
			t.Fatal(err)
		}
		img, err := env.store.Image("localhost/a:latest")
		if err != nil {
			t.Fatal(err)
		}
		removeLayerRecord(t, env.store, img.TopLayer)
		if _, err := env.store.Layer(img.TopLayer); !errors.Is(err, storage.ErrLayerUnknown) {
			t.Fatalf("layer %s still known to the builder's store: %v", img.TopLayer, err)
		}
		env.failCommit(t, b, CommitOptions{}, ErrLayerUnknown, "b", img.TopLayer)
	})

	t.Run("layer-data-removed", func(t *testing.T) {
		// The container's layer is still recorded but its files are gone.
		env := newTestEnv(t)
		b, _ := env.newFilledBuilder(t, "work", 4)
		if err := b.Unmount(); err != nil {
			t.Fatal(err)
		}
		ctr, err := env.store.Container(b.ContainerID())
		if err != nil {
			t.Fatal(err)
		}
		layerDir := filepath.Join(env.store.GraphRoot(), "vfs", "dir", ctr.LayerID)
		if _, err := os.Stat(layerDir); err != nil {
			t.Fatalf("the vfs layer directory is not where expected: %v", err)
		}
		if err := os.RemoveAll(layerDir); err != nil {
			t.Fatal(err)
		}
		env.failCommit(t, b, CommitOptions{}, nil, "work", ctr.LayerID)
	})

	t.Run("cancelled-during-export", func(t *testing.T) {
		env := newTestEnv(t)
		defer checkGoroutines(t)()
		b, _ := env.newFilledBuilder(t, "work", 4)
		writeRandomFile(t, filepath.Join(b.MountPoint(), "big"), 32<<20)
		ctr, err := env.store.Container(b.ContainerID())
		if err != nil {
			t.Fatal(err)
		}
		for _, dest := range []types.ImageReference{ociRef(t, env.dir(t, "oci"), "latest"), storeRef(t, env.store, "localhost/failed:latest")} {
			images, layers := snapshotStore(t, env.store)
			ctx, cancel := context.WithCancel(env.ctx)
			cancelled := false
			testHookExportStarted = func(string) { cancelled = true; cancel() }
			_, err := b.Commit(ctx, dest, CommitOptions{SystemContext: env.sys})
			testHookExportStarted = nil
			cancel()
			if !cancelled {
				t.Fatalf("commit to %s ended (%v) before any blob was being written", dest.Transport().Name(), err)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("commit to %s: %v, want context.Canceled", dest.Transport().Name(), err)
			}
			for _, s := range []string{"work", ctr.LayerID, "export"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not mention %q", err, s)
				}
			}
			assertEmptyDir(t, env.tmp)
			if p := localPath(dest); p != "" {
				assertAbsent(t, p)
			}
			if i, l := snapshotStore(t, env.store); i != images || l != layers {
				t.Errorf("store has %d images and %d layers after a cancelled commit, %d and %d before", i, l, images, layers)
			}
		}
	})

	t.Run("cancelled-during-copy", func(t *testing.T) {
		env := newTestEnv(t)
		defer checkGoroutines(t)()
		b, _ := env.newFilledBuilder(t, "work", 4)
		writeRandomFile(t, filepath.Join(b.MountPoint(), "big"), 8<<20)
		// The layout already holds an image, which must survive as it was.
		layoutDir := env.dir(t, "oci")
		if _, err := b.Commit(env.ctx, ociRef(t, layoutDir, "old"), CommitOptions{SystemContext: env.sys}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(b.MountPoint(), "newer"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		before := listFiles(t, layoutDir)
		index, err := os.ReadFile(filepath.Join(layoutDir, "index.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, dest := range []types.ImageReference{ociRef(t, layoutDir, "new"), storeRef(t, env.store, "localhost/failed:latest")} {
			images, layers := snapshotStore(t, env.store)
			ctx, cancel := context.WithCancel(env.ctx)
			// copy.Image reports each blob as it starts copying it.
			report := &cancellingWriter{cancel: cancel, when: []byte("Copying blob")}
			_, err := b.Commit(ctx, dest, CommitOptions{SystemContext: env.sys, Compression: CompressionNone, ReportWriter: report})
			cancel()
			if !report.fired() {
				t.Fatalf("commit to %s: no blob copy was reported (%v)", dest.Transport().Name(), err)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("commit to %s: %v, want context.Canceled", dest.Transport().Name(), err)
			}
			if !strings.Contains(err.Error(), "work") {
				t.Errorf("%q does not name the container", err)
			}
			assertEmptyDir(t, env.tmp)
			if i, l := snapshotStore(t, env.store); i != images || l != layers {
				t.Errorf("store has %d images and %d layers after a cancelled commit, %d and %d before", i, l, images, layers)
			}
		}
		if after := listFiles(t, layoutDir); !slices.Equal(before, after) {
			t.Errorf("layout holds %v after a cancelled commit, %v before", after, before)
		}
		if got, err := os.ReadFile(filepath.Join(layoutDir, "index.json")); err != nil || !bytes.Equal(got, index) {
			t.Errorf("index changed by a cancelled commit: %s (%v)", got, err)
		}
		checkImage(t, ociRef(t, layoutDir, "old"), wantImage{Layers: 1})
	})

	t.Run("cancelled-during-copy-to-dir", func(t *testing.T) {
		// containers/image empties a dir: directory when it opens it: the
		// image it held is put back when the commit fails, or, where it
		// could not be kept (the directory holds a directory, or is a
		// mount point), the directory is left empty, which the next commit
		// takes. A directory reached through a symlink is dealt with where
		// it is.
		stamp := time.Unix(1700000000, 0)
		for _, variant := range []string{"plain", "holds-dir", "symlinked"} {
			holdsDir := variant == "holds-dir"
			env := newTestEnv(t)
			b, _ := env.newFilledBuilder(t, "work", 4)
			writeRandomFile(t, filepath.Join(b.MountPoint(), "big"), 8<<20)
			parent := env.dir(t, "dirs")
			if err := os.Mkdir(parent, 0o755); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(parent, "image")
			ref := parseRef(t, "dir:"+dir)
			if variant == "symlinked" {
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				link := filepath.Join(env.dir(t, "links"), "image")
				if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(dir, link); err != nil {
					t.Fatal(err)
				}
				ref = parseRef(t, "dir:"+link)
			}
			if _, err := b.Commit(env.ctx, ref, CommitOptions{SystemContext: env.sys, HistoryTimestamp: &stamp}); err != nil {
				t.Fatal(err)
			}
			before := fileContents(t, dir)
			if holdsDir {
				if err := os.Mkdir(filepath.Join(dir, "extra"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			// The same content again: its blobs have the old image's names;
			// through the symlink, new content, whose blobs must go.
			extra := filepath.Join(b.MountPoint(), "extra")
			if variant == "symlinked" {
				writeRandomFile(t, extra, 1<<20)
			}
			ctx, cancel := context.WithCancel(env.ctx)
			report := &cancellingWriter{cancel: cancel, when: []byte("Copying blob")}
			_, err := b.Commit(ctx, ref, CommitOptions{SystemContext: env.sys, HistoryTimestamp: &stamp, ReportWriter: report})
			cancel()
			os.Remove(extra)
			if !report.fired() || !errors.Is(err, context.Canceled) {
				t.Fatalf("%s: commit cancelled as a blob was copied: %v, want context.Canceled", variant, err)
			}
			if holdsDir {
				if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
					t.Errorf("the directory holds %v (%v) after a failed commit, want it emptied", entries, err)
				}
			} else {
				if after := fileContents(t, dir); !maps.Equal(after, before) {
					t.Errorf("the directory holds %v after a failed commit, %v before", after, before)
				}
				checkImage(t, ref, wantImage{Layers: 1})
			}
			if _, err := b.Commit(env.ctx, ref, CommitOptions{SystemContext: env.sys, HistoryTimestamp: &stamp}); err != nil {
				t.Errorf("holds a directory %v: committing again after the failed commit: %v", holdsDir, err)
			}
			if after := fileContents(t, dir); !maps.Equal(after, before) {
				t.Errorf("holds a directory %v: the directory holds %v after committing again, want %v", holdsDir, after, before)
			}
			if entries, err := os.ReadDir(parent); err != nil || len(entries) != 1 {
				t.Errorf("holds a directory %v: %s holds %v (%v), want only the image's directory", holdsDir, parent, entries, err)
			}
			assertEmptyDir(t, env.tmp)
		}
	})

	t.Run("cancelled-mid-export-returns-promptly", func(t *testing.T) {
		// A big layer is being exported when ctx is cancelled: the commit
		// returns within maxCancelDelay, with every goroutine it started
		// ended and every file it wrote removed.
		env := newTestEnv(t)
		b, _ := env.newFilledBuilder(t, "work", 4)
		writeRandomFile(t, filepath.Join(b.MountPoint(), "big"), 128<<20)
		dirDest, err := directory.NewReference(env.dir(t, "dir"))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			dest        types.ImageReference
			compression Compression
		}{
			{dirDest, CompressionGzip},
			{ociRef(t, env.dir(t, "oci"), "latest"), CompressionZstd},
			{ociRef(t, env.dir(t, "oci"), "latest"), CompressionNone},
			{storeRef(t, env.store, "localhost/failed:latest"), CompressionGzip},
		} {
			name := tc.dest.Transport().Name() + "-" + tc.compression.String()
			done := checkGoroutines(t)
			images, layers := snapshotStore(t, env.store)
			ctx, cancel := context.WithCancel(env.ctx)
			var cancelledAt atomic.Pointer[time.Time]
			testHookExportStarted = func(string) {
				time.AfterFunc(150*time.Millisecond, func() {
					now := time.Now()
					cancelledAt.Store(&now)
					cancel()
				})
			}
			_, err := b.Commit(ctx, tc.dest, CommitOptions{SystemContext: env.sys, Compression: tc.compression})
			returned := time.Now()
			testHookExportStarted = nil
			at := cancelledAt.Load()
			cancel()
			if at == nil {
				t.Fatalf("%s: the commit ended (%v) within 150ms of the export's start: make the layer bigger", name, err)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("%s: %v, want context.Canceled", name, err)
			}
			delay := returned.Sub(*at)
			t.Logf("%s: returned %s after the cancel", name, delay.Round(time.Millisecond))
			if delay > maxCancelDelay {
				t.Errorf("%s: returned %s after the cancel, want less than %s", name, delay, maxCancelDelay)
			}
			done()
			assertEmptyDir(t, env.tmp)
			if p := localPath(tc.dest); p != "" {
				assertAbsent(t, p)
			}
			if i, l := snapshotStore(t, env.store); i != images || l != layers {
				t.Errorf("%s: store has %d images and %d layers after a cancelled commit, %d and %d before", name, i, l, images, layers)
			}
		}
	})

	t.Run("cancelled-mid-push-returns-promptly", func(t *testing.T) {
		env := newTestEnv(t)
		reg := startRegistry(t, env.dir(t, "registry"))
		b, _ := env.newFilledBuilder(t, "work", 4)
		writeRandomFile(t, filepath.Join(b.MountPoint(), "big"), 64<<20)
		sys := *env.sys
		sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
		dest, err := alltransports.ParseImageName("docker://" + reg.addr + "/faults/cancelled:latest")
		if err != nil {
			t.Fatal(err)
		}
		done := checkGoroutines(t)
		ctx, cancel := context.WithCancel(env.ctx)
		defer cancel()
		var cancelledAt atomic.Pointer[time.Time]
		stop := cancelWhen(func() {
			now := time.Now()
			cancelledAt.Store(&now)
			cancel()
		}, func() bool { return reg.uploading(1 << 20) })
		// Gzip layers: with uncompressed ones copy.Image would compress
		// them, and its pgzip writer leaks a goroutine when the upload
		// fails (pgzip's Close returns early after a write error).
		_, err = b.Commit(ctx, dest, CommitOptions{SystemContext: &sys, RetryCount: 2, RetryDelay: time.Hour})
		returned := time.Now()
		if !stop() {
			t.Fatalf("the push ended (%v) before it could be cancelled", err)
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("commit: %v, want context.Canceled", err)
		}
		delay := returned.Sub(*cancelledAt.Load())
		t.Logf("returned %s after the cancel: %v", delay.Round(time.Millisecond), err)
		if delay > maxCancelDelay {
			t.Errorf("returned %s after the cancel, want less than %s", delay, maxCancelDelay)
		}
		done()
		assertEmptyDir(t, env.tmp)
		if reg.has("faults/cancelled", "latest") {
			t.Error("the registry has the image of a cancelled push")
		}
	})
}

// maxCancelDelay bounds the time between a cancel and Commit's return.
const maxCancelDelay = 2 * time.Second

// checkGoroutines notes the goroutines running now; the function it
// returns fails the test if others are still running, after giving them a
// moment to end.
func checkGoroutines(t *testing.T) func() {
	t.Helper()
	before := goleak.IgnoreCurrent()
	return func() {
		t.Helper()
		if err := goleak.Find(before); err != nil {
			t.Errorf("goroutines left running: %v", err)
		}
	}
}

// removeLayerRecord deletes layer id from the store's layers.json as
// another process would, bypassing the checks of store.DeleteLayer, and
// makes store notice the change.
func removeLayerRecord(t *testing.T, store storage.Store, id string) {
	t.Helper()
	path := filepath.Join(store.GraphRoot(), "vfs-layers", "layers.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var records []map[string]any
	if err := json.Unmarshal(data, &records); err != nil {
		t.Fatal(err)
	}
	n := len(records)
	records = slices.DeleteFunc(records, func(r map[string]any) bool { return r["id"] == id })
	if len(records) != n-1 {
		t.Fatalf("layer %s is not in %s", id, path)
	}
	if data, err = json.Marshal(records); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// A second store object for the same directories, as another process
	// would have: its write marks the layer store as changed, so the
	// builder's store reloads the records.
	store.Free()
	other, err := storage.GetStore(storage.StoreOptions{RunRoot: store.RunRoot(), GraphRoot: store.GraphRoot(), GraphDriverName: "vfs"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		other.Free()
		if _, err := other.Shutdown(false); err != nil {
			t.Logf("shutting down the second store: %v", err)
		}
	}()
	l, err := other.CreateLayer("", "", nil, "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.DeleteLayer(l.ID); err != nil {
		t.Fatal(err)
	}
}

// writeRandomFile writes size random bytes to path.
func writeRandomFile(t *testing.T, path string, size int) {
	t.Helper()
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{1}).Read(data)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// partialBlobIn is true while a blob is being written under dir.
func partialBlobIn(dir string) bool {
	found := false
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(d.Name(), ".partial") {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

// cancelWhen polls cond and calls cancel when it holds. The returned stop
// function ends the polling and says whether cancel was called.
func cancelWhen(cancel context.CancelFunc, cond func() bool) (stop func() bool) {
	done := make(chan struct{})
	result := make(chan bool, 1)
	go func() {
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				result <- false
				return
			case <-tick.C:
				if cond() {
					cancel()
					result <- true
					return
				}
			}
		}
	}()
	return func() bool {
		close(done)
		return <-result
	}
}

// cancellingWriter calls cancel when a write contains when.
type cancellingWriter struct {
	cancel context.CancelFunc
	when   []byte
	mu     sync.Mutex
	hit    bool
}

func (w *cancellingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.hit && bytes.Contains(p, w.when) {
		w.hit = true
		w.cancel()
	}
	return len(p), nil
}

func (w *cancellingWriter) fired() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hit
}

// fileContents maps each file of the directory dir to its content's digest.
func fileContents(t *testing.T, dir string) map[string]digest.Digest {
	t.Helper()
	out := map[string]digest.Digest{}
	for _, name := range listFiles(t, dir) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = digest.FromBytes(data)
	}
	return out
}

// listFiles lists the files under dir, relative to it.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
