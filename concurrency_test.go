package bricklayer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	is "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
)

// A builder is used from several goroutines (and a container from several
// processes): two commits at once, a commit racing a Delete or an Add. Each
// either succeeds with a valid image or fails with an error, never leaves a
// broken image or store behind. These tests are named Concurrent* so that
// `make test` runs them again under the race detector.

// checkStore fails the test if store.Check finds anything wrong.
func checkStore(t *testing.T, store storage.Store) {
	t.Helper()
	report, err := store.Check(storage.CheckEverything())
	if err != nil {
		t.Fatalf("checking the store: %v", err)
	}
	for what, m := range map[string]map[string][]error{
		"layer": report.Layers, "read-only layer": report.ROLayers, "image": report.Images,
		"read-only image": report.ROImages, "container": report.Containers,
	} {
		for id, errs := range m {
			for _, err := range errs {
				t.Errorf("store check: %s %s: %v", what, id, err)
			}
		}
	}
}

// commitResult is the outcome of one of several concurrent commits.
type commitResult struct {
	dest types.ImageReference
	res  CommitResult
	err  error
}

// commitAll commits b to every dest at once.
func commitAll(env *testEnv, b *Builder, dests ...types.ImageReference) []commitResult {
	out := make([]commitResult, len(dests))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, dest := range dests {
		wg.Go(func() {
			<-start
			res, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys})
			out[i] = commitResult{dest: dest, res: res, err: err}
		})
	}
	close(start)
	wg.Wait()
	return out
}

func TestConcurrentCommitsOfOneBuilder(t *testing.T) {
	env := newTestEnv(t)
	b, want := env.newFilledBuilder(t, "work", 10)
	writeRandomFile(t, filepath.Join(b.MountPoint(), "big"), 4<<20)
	want["big"] = entry{} // checked by size below
	sharedLayout := env.dir(t, "shared")
	for _, tc := range []struct {
		name  string
		dests []types.ImageReference
	}{
		{"two-layouts", []types.ImageReference{ociRef(t, env.dir(t, "a"), "latest"), ociRef(t, env.dir(t, "b"), "latest")}},
		{"one-layout-two-tags", []types.ImageReference{ociRef(t, sharedLayout, "one"), ociRef(t, sharedLayout, "two")}},
		{"store-twice", []types.ImageReference{storeRef(t, env.store, "localhost/one:latest"), storeRef(t, env.store, "localhost/two:latest")}},
		{"store-and-layout", []types.ImageReference{storeRef(t, env.store, "localhost/three:latest"), ociRef(t, env.dir(t, "c"), "latest")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			results := commitAll(env, b, tc.dests...)
			ok := 0
			for _, r := range results {
				name := r.dest.StringWithinTransport()
				if r.err != nil {
					t.Logf("commit to %s failed: %v", name, r.err)
					if !strings.Contains(r.err.Error(), "work") {
						t.Errorf("commit to %s: %q does not name the container", name, r.err)
					}
					continue
				}
				ok++
				img := checkImage(t, r.dest, wantImage{Layers: 1})
				if img.ManifestDigest != r.res.ManifestDigest {
					t.Errorf("commit to %s returned manifest %s, the image has %s", name, r.res.ManifestDigest, img.ManifestDigest)
				}
				if img.Tree["big"].Size != 4<<20 {
					t.Errorf("commit to %s: big is %d bytes", name, img.Tree["big"].Size)
				}
				img.Tree["big"] = entry{}
				compareTrees(t, want, img.Tree)
			}
			// Nothing stops two commits of one builder from both working.
			if ok != len(results) {
				t.Errorf("%d of %d concurrent commits succeeded", ok, len(results))
			}
			assertEmptyDir(t, env.tmp)
			checkStore(t, env.store)
		})
	}
}

// TestConcurrentCommitAndDelete deletes the container, as another process
// would, at some point of its commit, with the vfs and the overlay drivers:
// the commit either holds the whole tree or fails cleanly.
// TestConcurrentCommitsToOneName commits two containers at once to one
// name in the store, a few times: each commit's result names its own image
// (the one whose config it wrote), wherever the name ended up.
func TestConcurrentCommitsToOneName(t *testing.T) {
	env := newTestEnv(t)
	var builders []*Builder
	for i, name := range []string{"a", "b"} {
		b, _ := env.newFilledBuilder(t, name, uint64(40+i))
		b.SetLabel("who", name)
		builders = append(builders, b)
	}
	for round := range 6 {
		var wg sync.WaitGroup
		results := make([]CommitResult, len(builders))
		errs := make([]error, len(builders))
		for i, b := range builders {
			wg.Go(func() {
				results[i], errs[i] = b.Commit(env.ctx, storeRef(t, env.store, "localhost/contended:latest"), CommitOptions{SystemContext: env.sys, Compression: CompressionNone})
			})
		}
		wg.Wait()
		for i, res := range results {
			if errs[i] != nil {
				t.Fatalf("round %d, commit of %s: %v", round, builders[i].ContainerName(), errs[i])
			}
			if res.ImageID != res.ConfigDigest.Encoded() {
				t.Errorf("round %d, commit of %s: image %s, but its config is %s", round, builders[i].ContainerName(), res.ImageID, res.ConfigDigest)
			}
		}
	}
}

func TestConcurrentCommitAndDelete(t *testing.T) {
	for _, driver := range []string{"vfs", "overlay"} {
		t.Run(driver, func(t *testing.T) { testConcurrentCommitAndDelete(t, driver) })
	}
}

func testConcurrentCommitAndDelete(t *testing.T, driver string) {
	for i, delay := range []time.Duration{0, 5 * time.Millisecond, 20 * time.Millisecond, 60 * time.Millisecond} {
		for _, toStore := range []bool{false, true} {
			t.Run(fmt.Sprintf("store=%v/delay=%s", toStore, delay), func(t *testing.T) {
				env := newTestEnvWith(t, driver)
				b, want := env.newFilledBuilder(t, "work", uint64(20+i))
				writeRandomFile(t, filepath.Join(b.MountPoint(), "big"), 8<<20)
				var dest types.ImageReference
				if toStore {
					dest = storeRef(t, env.store, "localhost/raced:latest")
				} else {
					dest = ociRef(t, env.dir(t, "oci"), "latest")
				}
				// The deleting builder is another handle on the container, as
				// another process would have.
				other, err := OpenBuilder(env.store, "work")
				if err != nil {
					t.Fatal(err)
				}
				var commitErr, deleteErr error
				var wg sync.WaitGroup
				wg.Go(func() { _, commitErr = b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys}) })
				wg.Go(func() {
					time.Sleep(delay)
					deleteErr = other.Delete()
				})
				wg.Wait()
				t.Logf("commit: %v; delete: %v", commitErr, deleteErr)
				if deleteErr != nil && !strings.Contains(deleteErr.Error(), "work") {
					t.Errorf("delete: %q does not name the container", deleteErr)
				}
				if commitErr != nil {
					if !strings.Contains(commitErr.Error(), "work") {
						t.Errorf("commit: %q does not name the container", commitErr)
					}
					if p := localPath(dest); p != "" {
						assertAbsent(t, p)
					}
					if _, err := env.store.Image("localhost/raced:latest"); err == nil {
						t.Error("a failed commit left its image in the store")
					}
				} else {
					img := checkImage(t, dest, wantImage{Layers: 1})
					if img.Tree["big"].Size != 8<<20 {
						t.Errorf("big is %d bytes in the image", img.Tree["big"].Size)
					}
					img.Tree["big"] = entry{}
					want["big"] = entry{}
					compareTrees(t, want, img.Tree)
				}
				assertEmptyDir(t, env.tmp)
				checkStore(t, env.store)
				if deleteErr == nil {
					if _, err := env.store.Container(b.ContainerID()); err == nil {
						t.Error("the container is still in the store after Delete succeeded")
					}
				}
			})
		}
	}
}

func TestConcurrentCommitAndAdd(t *testing.T) {
	env := newTestEnv(t)
	// Host files to add: enough that the Add lasts as long as the commit.
	src := env.dir(t, "src")
	for i := range 200 {
		p := filepath.Join(src, fmt.Sprintf("d%02d", i%10), fmt.Sprintf("f%03d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeRandomFile(t, p, 16<<10)
	}
	for i, toStore := range []bool{false, true, false, true} {
		t.Run(fmt.Sprintf("%d-store=%v", i, toStore), func(t *testing.T) {
			b, want := env.newFilledBuilder(t, fmt.Sprintf("work-%d", i), uint64(30+i))
			writeRandomFile(t, filepath.Join(b.MountPoint(), "big"), 8<<20)
			want["big"] = entry{}
			var dest types.ImageReference
			if toStore {
				dest = storeRef(t, env.store, fmt.Sprintf("localhost/added-%d:latest", i))
			} else {
				dest = ociRef(t, env.dir(t, "oci"), "latest")
			}
			var commitErr, addErr error
			var res CommitResult
			var wg sync.WaitGroup
			wg.Go(func() { res, commitErr = b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys}) })
			wg.Go(func() {
				time.Sleep(time.Duration(i) * 10 * time.Millisecond)
				addErr = b.Add(env.ctx, "/added/", AddOptions{}, src)
			})
			wg.Wait()
			if addErr != nil {
				t.Errorf("add: %v", addErr)
			}
			if _, err := os.Stat(filepath.Join(b.MountPoint(), "added", "d09", "f199")); err != nil {
				t.Errorf("after the add: %v", err)
			}
			raced := true
			if commitErr != nil {
				raced = false
				// A layer that changes while it is read may fail the commit
				// (a file grew or shrank under the tar writer), cleanly.
				t.Logf("commit: %v", commitErr)
				if !strings.Contains(commitErr.Error(), b.ContainerName()) {
					t.Errorf("commit: %q does not name the container", commitErr)
				}
				if p := localPath(dest); p != "" {
					assertAbsent(t, p)
				}
				if toStore {
					if _, err := is.Transport.GetStoreImage(env.store, dest); err == nil {
						t.Error("a failed commit left its image in the store")
					}
				}
				assertEmptyDir(t, env.tmp)
				checkStore(t, env.store)
				// Once the add is done, the same commit holds every file.
				if res, commitErr = b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys}); commitErr != nil {
					t.Fatalf("commit after the add: %v", commitErr)
				}
			}
			img := checkImage(t, dest, wantImage{Layers: 1})
			if img.ManifestDigest != res.ManifestDigest {
				t.Errorf("commit returned manifest %s, the image has %s", res.ManifestDigest, img.ManifestDigest)
			}
			// The image holds the tree as it was, plus some of the added
			// files. The copier writes a file in place, so the raced commit
			// may hold one as far as it was written; the commit after the add
			// holds them all, whole.
			added := 0
			for name, e := range img.Tree {
				if name == "added" || strings.HasPrefix(name, "added/") {
					if e.Type == tar.TypeReg {
						added++
						if e.Size > 16<<10 || (!raced && e.Size != 16<<10) {
							t.Errorf("%s: %d bytes in the image, want %d", name, e.Size, 16<<10)
						}
					}
					delete(img.Tree, name)
				}
			}
			t.Logf("the image has %d of the 200 added files", added)
			if !raced && added != 200 {
				t.Errorf("the commit after the add has %d of the 200 added files", added)
			}
			img.Tree["big"] = entry{}
			compareTrees(t, want, img.Tree)
			assertEmptyDir(t, env.tmp)
			checkStore(t, env.store)
		})
	}
}

// recordingCloser counts its Close calls and fails them with err.
type recordingCloser struct {
	io.Reader
	closes int
	err    error
}

func (r *recordingCloser) Close() error {
	r.closes++
	return r.err
}

// enteredReader closes entered when its first Read begins.
type enteredReader struct {
	io.ReadCloser
	entered chan struct{}
	once    sync.Once
}

func (r *enteredReader) Read(p []byte) (int, error) {
	r.once.Do(func() { close(r.entered) })
	return r.ReadCloser.Read(p)
}

// A layer's diff is closed, releasing the layer store's lock for the next
// layer's export, as soon as it has been read to its end; the export's own
// Close afterwards does not close it again, and reports the first close's
// error.
func TestCloseAtEOF(t *testing.T) {
	errClose := errors.New("close failed")
	rc := &recordingCloser{Reader: strings.NewReader("layer"), err: errClose}
	c := &closeAtEOF{rc: rc}
	b, err := io.ReadAll(iotest.OneByteReader(c))
	if err != nil || string(b) != "layer" {
		t.Fatalf("read %q, %v", b, err)
	}
	if rc.closes != 1 {
		t.Errorf("closed %d times once read to its end, want 1", rc.closes)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("read after the end: %d, %v", n, err)
	}
	if err := c.Close(); !errors.Is(err, errClose) {
		t.Errorf("Close: %v, want the first close's error", err)
	}
	if rc.closes != 1 {
		t.Errorf("closed %d times in all, want 1", rc.closes)
	}

	// A diff not read to its end is closed by Close.
	rc = &recordingCloser{Reader: strings.NewReader("layer")}
	c = &closeAtEOF{rc: rc}
	if _, err := c.Read(make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
	if rc.closes != 0 {
		t.Errorf("closed before its end")
	}
	if err := c.Close(); err != nil || rc.closes != 1 {
		t.Errorf("Close: %v, %d closes", err, rc.closes)
	}

	// A Close does not wait for a read in flight (one waiting on the
	// goroutine that walks the layer, say).
	pr, pw := io.Pipe()
	reading := make(chan struct{})
	c = &closeAtEOF{rc: &enteredReader{ReadCloser: pr, entered: reading}}
	readDone := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		readDone <- err
	}()
	<-reading
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for the read in flight")
	}
	if err := <-readDone; !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("the read in flight ended with %v, want the closed pipe's error", err)
	}
	pw.Close()
}

// TestConcurrentCompressionOneAtATime: a commit exports two layers at
// once, but compresses one at a time (holdCompressor). With the overlay
// driver's native diffs a new layer is read without the store's lock, so
// its export can start while a base layer's holds it: the first export to
// start waits for a second to start beside it, up to a second.
func TestConcurrentCompressionOneAtATime(t *testing.T) {
	env := newTestEnvWith(t, "overlay")
	if comparesTrees(env.store) {
		t.Skip("the overlay driver does not make its diffs natively here")
	}
	env.commitBase(t, "base", "localhost/base:latest", 31)
	b, mp := env.newMountedBuilder(t, "localhost/base:latest", "work")
	if err := os.WriteFile(filepath.Join(mp, "new"), []byte("a file of the new layer"), 0o644); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var waiting, overlapped bool
	arrived := make(chan struct{}, 1)
	testHookExportStarted = func(string) {
		mu.Lock()
		if waiting {
			overlapped = true
			mu.Unlock()
			arrived <- struct{}{}
			return
		}
		waiting = true
		mu.Unlock()
		select {
		case <-arrived:
		case <-time.After(time.Second):
		}
		mu.Lock()
		waiting = false
		mu.Unlock()
	}
	t.Cleanup(func() { testHookExportStarted = nil })
	for _, tc := range []struct {
		compression Compression
		parallelism int
		squash      bool
		want        bool
	}{
		{CompressionNone, 0, false, true},
		{CompressionGzip, 0, false, false},
		{CompressionZstd, 0, false, false},
		{CompressionNone, 1, false, false},
		// The squashed new layer is exported beside the base layer. (With
		// the compressor not taken, this case fails only when the squash
		// reaches its export first: the base layer's diff, waiting in the
		// hook, holds the store's lock that the squash's mount needs.)
		{CompressionGzip, 0, true, false},
	} {
		overlapped = false
		opts := CommitOptions{SystemContext: env.sys, Compression: tc.compression, LayerParallelism: tc.parallelism, SquashNewLayers: tc.squash}
		if _, err := b.Commit(env.ctx, ociRef(t, env.dir(t, "oci"), "latest"), opts); err != nil {
			t.Fatal(err)
		}
		if overlapped != tc.want {
			t.Errorf("%v, LayerParallelism %d, squash %v: two layers exported at once: %v, want %v", tc.compression, tc.parallelism, tc.squash, overlapped, tc.want)
		}
	}
}
