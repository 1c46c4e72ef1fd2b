package bricklayer

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.podman.io/storage"
	"go.podman.io/storage/pkg/archive"
)

// rawStoreDiff returns the store's diff of layer id against its parent,
// uncompressed, as it streams it.
func rawStoreDiff(t *testing.T, store storage.Store, id string) []byte {
	t.Helper()
	rc, err := store.Diff("", id, &storage.DiffOptions{Compression: new(archive.Uncompressed)})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading the store's diff of layer %s: %v", id, err)
	}
	return data
}

// imageLayerIDs returns the layer IDs of the stored image name, bottom
// first.
func imageLayerIDs(t *testing.T, store storage.Store, name string) []string {
	t.Helper()
	img, err := store.Image(name)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := layerChain(store, img.TopLayer)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range chain {
		ids = append(ids, l.ID)
	}
	return ids
}

// newTwoLayerBase commits localhost/a (a filled tree) and localhost/ab (a
// and a layer on it) into env's store, and returns ab's layer IDs, bottom
// first.
func newTwoLayerBase(t *testing.T, env *testEnv) []string {
	t.Helper()
	env.commitBase(t, "a", "localhost/a:latest", 2)
	b, mp := env.newMountedBuilder(t, "localhost/a:latest", "b")
	writeTree(t, mp, time.Time{}, map[string]string{"second/file": "in the second layer", "dir/block": "changed"})
	if _, err := b.Commit(env.ctx, storeRef(t, env.store, "localhost/ab:latest"), CommitOptions{SystemContext: env.sys}); err != nil {
		t.Fatal(err)
	}
	ids := imageLayerIDs(t, env.store, "localhost/ab:latest")
	if len(ids) != 2 {
		t.Fatalf("localhost/ab has %d layers, want 2", len(ids))
	}
	return ids
}

// TestRecordedDiffSameAsStore: a commit to an OCI layout reads each base
// layer rebuilt from its tar-split (recordedDiff), not through store.Diff,
// and the blob is the store's own diff byte for byte, for the bottom layer
// and the one above it, in a store of the vfs driver and of overlay.
func TestRecordedDiffSameAsStore(t *testing.T) {
	for _, driver := range []string{"vfs", "overlay"} {
		t.Run(driver, func(t *testing.T) {
			env := newTestEnvWith(t, driver)
			base := newTwoLayerBase(t, env)
			c, mp := env.newMountedBuilder(t, "localhost/ab:latest", "c")
			writeTree(t, mp, time.Time{}, map[string]string{"third": "new"})

			// Base layers are read side by side: the hook is called from
			// several goroutines.
			var mu sync.Mutex
			var rebuilt []string
			testHookRecordedDiff = func(id string) {
				mu.Lock()
				defer mu.Unlock()
				rebuilt = append(rebuilt, id)
			}
			t.Cleanup(func() { testHookRecordedDiff = nil })
			for _, comp := range []Compression{CompressionNone, CompressionGzip} {
				rebuilt = nil
				dir := env.dir(t, "oci")
				if _, err := c.Commit(env.ctx, ociRef(t, dir, "c"), CommitOptions{Compression: comp, SystemContext: env.sys}); err != nil {
					t.Fatal(err)
				}
				slices.Sort(rebuilt)
				if want := slices.Sorted(slices.Values(base)); !slices.Equal(rebuilt, want) {
					t.Errorf("%s: layers rebuilt from their tar-split: %v, want the base's %v", comp, rebuilt, want)
				}
				layers := readOCILayers(t, dir)
				if len(layers) != 3 {
					t.Fatalf("%s: %d layers, want 3", comp, len(layers))
				}
				for i, id := range base {
					if !bytes.Equal(layers[i], rawStoreDiff(t, env.store, id)) {
						t.Errorf("%s: layer %d (%s) is not the store's diff of it", comp, i, id)
					}
				}
			}
		})
	}
}

// TestRecordedDiffLocking: while a base layer is read, the layer store is
// held for reading only: another reader of the store goes on (store.Diff
// held it for writing, and kept readers waiting for the whole stream), a
// writer waits until the stream is closed, and then goes on too.
func TestRecordedDiffLocking(t *testing.T) {
	env := newTestEnv(t)
	id := newTwoLayerBase(t, env)[0]
	src := &imageSource{store: env.store}
	rc, err := src.recordedDiff(id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}

	done := func(f func() error) chan error {
		ch := make(chan error, 1)
		go func() { ch <- f() }()
		return ch
	}
	read := done(func() error { _, err := env.store.Layers(); return err })
	select {
	case err := <-read:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		rc.Close()
		t.Fatal("listing the layers waited for the base layer's stream")
	}

	write := done(func() error { return env.store.AddNames(id, []string{"renamed-while-read"}) })
	select {
	case err := <-write:
		t.Fatalf("a writer of the layer store went on while the base layer was read (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-write:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the writer still waits after the stream was closed")
	}
}

// TestRecordedDiffFallsBack: a layer without a tar-split is left to
// store.Diff (which makes its diff from the driver), and baseDiff serves
// that.
func TestRecordedDiffFallsBack(t *testing.T) {
	env := newTestEnv(t)
	id := newTwoLayerBase(t, env)[1]
	ts := filepath.Join(env.store.GraphRoot(), "vfs-layers", id+".tar-split.gz")
	if err := os.Remove(ts); err != nil {
		t.Fatalf("the tar-split is not where recordedDiff looks: %v", err)
	}
	src := &imageSource{store: env.store}
	if rc, err := src.recordedDiff(id); !errors.Is(err, errNoRecordedDiff) {
		if rc != nil {
			rc.Close()
		}
		t.Fatalf("recordedDiff of a layer without a tar-split: %v, want errNoRecordedDiff", err)
	}
	rc, err := src.baseDiff(id)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if want := rawStoreDiff(t, env.store, id); !bytes.Equal(got, want) {
		t.Error("baseDiff of a layer without a tar-split is not the store's diff")
	}
	if !slices.Contains(tarNames(t, got), "second/file") {
		t.Errorf("the diff lacks the layer's file: %v", tarNames(t, got))
	}
}

// TestRecordedDiffShortFile: a base layer's file that lost bytes since the
// layer was written fails the read with an error that names the file and
// the layer, and wraps ErrLayerCorrupt.
func TestRecordedDiffShortFile(t *testing.T) {
	env := newTestEnv(t)
	id := newTwoLayerBase(t, env)[0]
	if err := os.Truncate(filepath.Join(vfsLayerDir(t, env, id), "dir", "block"), 10); err != nil {
		t.Fatal(err)
	}
	src := &imageSource{store: env.store}
	rc, err := src.recordedDiff(id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	if !errors.Is(err, ErrLayerCorrupt) || !strings.Contains(err.Error(), "dir/block") || !strings.Contains(err.Error(), id) {
		t.Fatalf("reading a layer with a truncated file: %v, want ErrLayerCorrupt naming dir/block and layer %s", err, id)
	}
}
