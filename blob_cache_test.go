package bricklayer

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bricklayer/bricklayer/internal/layerexport"
	"go.podman.io/image/v5/transports/alltransports"
	"go.podman.io/image/v5/types"
)

// cachedBlob returns the path of the blob that cache dir records for the
// env's base layer compressed with c, or "" when it records none.
func (e *layoutReuseEnv) cachedBlob(t *testing.T, dir string, c Compression) string {
	t.Helper()
	cache, err := openBlobCache(dir, layerexport.Options{Algorithm: exportAlgorithm(c)})
	if err != nil {
		t.Fatal(err)
	}
	b, ok := cache.lookup(e.base.DiffID)
	if !ok {
		return ""
	}
	return b.path
}

func parseRef(t *testing.T, name string) types.ImageReference {
	t.Helper()
	ref, err := alltransports.ParseImageName(name)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestCommitTakesBaseLayersFromBlobCache commits a container on a store
// image (stored uncompressed, so every commit to a new layout compresses
// the base layer) with a blob cache. The first commit exports the base
// layer and keeps its blob; the next ones, into other layouts, a dir:
// directory and an archive, take it instead, and make the same layers as a
// commit without the cache. Another compression is kept apart, and the
// cache's pairing with the blob info cache is not needed.
func TestCommitTakesBaseLayersFromBlobCache(t *testing.T) {
	e := newLayoutReuseEnv(t)
	cache := filepath.Join(e.dir(t, "cache"), "made-by-the-commit")
	with := CommitOptions{Compression: CompressionGzip, BlobCacheDir: cache}

	first, exported := e.commitTo(t, ociRef(t, e.dir(t, "first"), "1"), with)
	if !exported {
		t.Fatalf("the base layer was not exported on the first commit")
	}
	kept := e.cachedBlob(t, cache, CompressionGzip)
	if kept == "" || filepath.Base(kept) != strings.TrimPrefix(first[0], "sha256:") {
		t.Fatalf("the cache keeps blob %q for the base layer, want %s", kept, first[0])
	}
	if fi, err := os.Stat(kept); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("the cached blob: %v, %v, want mode 0644", err, fi)
	}

	without, _ := e.commitTo(t, ociRef(t, e.dir(t, "without"), "1"), CommitOptions{Compression: CompressionGzip})
	if !slices.Equal(without, first) {
		t.Fatalf("layers %v without the cache, %v with it", without, first)
	}

	var mu sync.Mutex
	var taken []LayerProgress
	with.ExportProgress = func(p LayerProgress) {
		if p.Taken != "" {
			mu.Lock()
			taken = append(taken, p)
			mu.Unlock()
		}
	}
	layout := e.dir(t, "second")
	for _, dest := range []string{
		"oci:" + layout + ":1",
		"dir:" + e.dir(t, "dir"),
		"oci-archive:" + e.dir(t, "image.tar") + ":1",
	} {
		layers, exported := e.commitTo(t, parseRef(t, dest), with)
		if exported {
			t.Errorf("%s: the base layer was exported again, though the cache holds it", dest)
		}
		if !slices.Equal(layers, first) {
			t.Errorf("%s: layers %v, want %v as without the cache", dest, layers, first)
		}
		mu.Lock()
		if len(taken) != 1 || taken[0].LayerID != e.base.LayerID || taken[0].Taken != TakenBlobCache || taken[0].Digest.String() != first[0] || !taken[0].Done {
			t.Errorf("%s: reports of blobs taken %+v, want one for base layer %s, from the blob cache, blob %s", dest, taken, e.base.LayerID, first[0])
		}
		taken = nil
		mu.Unlock()
	}
	with.ExportProgress = nil
	// The blob is a file of the layout's own, readable by all.
	if fi, err := os.Stat(filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(first[0], "sha256:"))); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("the base layer's blob in %s: %v, %v, want mode 0644", layout, err, fi)
	}
	for _, d := range []string{layout, filepath.Join(cache, "blobs", "sha256"), filepath.Join(cache, "layers")} {
		leftovers, _ := filepath.Glob(filepath.Join(d, ".*"))
		if len(leftovers) > 0 {
			t.Errorf("temporary files left in %s: %v", d, leftovers)
		}
	}

	// Without the blob info cache's pair, the blob is decompressed to be
	// checked.
	e.forgetPairs(t)
	if layers, exported := e.commitTo(t, ociRef(t, e.dir(t, "unpaired"), "1"), with); exported || !slices.Equal(layers, first) {
		t.Errorf("without pairs: layers %v (base exported: %v), want %v taken from the cache", layers, exported, first)
	}
	if !e.paired(first[0]) {
		t.Errorf("the checked blob %s is not paired with the base layer in the blob info cache", first[0])
	}

	// zstd has entries of its own.
	zstd := CommitOptions{Compression: CompressionZstd, BlobCacheDir: cache}
	z, exported := e.commitTo(t, ociRef(t, e.dir(t, "zstd-1"), "1"), zstd)
	if !exported || z[0] == first[0] {
		t.Errorf("zstd: base layer %s (exported: %v), want the layer exported with zstd", z[0], exported)
	}
	if again, exported := e.commitTo(t, ociRef(t, e.dir(t, "zstd-2"), "1"), zstd); exported || again[0] != z[0] {
		t.Errorf("zstd again: base layer %s (exported: %v), want %s from the cache", again[0], exported, z[0])
	}
	// So has each level.
	level := CommitOptions{Compression: CompressionGzip, CompressionLevel: 1, BlobCacheDir: cache}
	if l1, exported := e.commitTo(t, ociRef(t, e.dir(t, "gzip-1"), "1"), level); !exported || l1[0] == first[0] {
		t.Errorf("gzip level 1: base layer %s (exported: %v), want the layer exported at level 1", l1[0], exported)
	}
}

// TestBlobCacheChecksTheBlob damages a cached blob, in place of the file
// (the layout it came from keeps its own) or in its entry: the commit
// exports the base layer again and makes the same image, and the cache
// keeps the good blob for the next one.
func TestBlobCacheChecksTheBlob(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, blob string)
	}{
		{"bytes", func(t *testing.T, blob string) {
			data, err := os.ReadFile(blob)
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)-100] ^= 0xff
			replaceFile(t, blob, data)
		}},
		{"header", func(t *testing.T, blob string) {
			// The gzip header's OS byte: the layer is still in the blob,
			// but the blob is not the one its name says.
			data, err := os.ReadFile(blob)
			if err != nil {
				t.Fatal(err)
			}
			data[9] ^= 0xff
			replaceFile(t, blob, data)
		}},
		{"short", func(t *testing.T, blob string) {
			replaceFile(t, blob, []byte("short"))
		}},
	} {
		withAndWithoutPairs(t, tc.name, func(t *testing.T, forget bool) {
			e := newLayoutReuseEnv(t)
			opts := CommitOptions{Compression: CompressionGzip, BlobCacheDir: e.dir(t, "cache")}
			first, _ := e.commitTo(t, ociRef(t, e.dir(t, "first"), "1"), opts)
			tc.damage(t, e.cachedBlob(t, opts.BlobCacheDir, CompressionGzip))
			if forget {
				e.forgetPairs(t)
			}

			second, exported := e.commitTo(t, ociRef(t, e.dir(t, "second"), "1"), opts)
			if !exported {
				t.Errorf("the base layer was not exported: a damaged blob was taken")
			}
			if !slices.Equal(second, first) {
				t.Errorf("layers %v, want %v exported as before", second, first)
			}
			third, exported := e.commitTo(t, ociRef(t, e.dir(t, "third"), "1"), opts)
			if exported || !slices.Equal(third, first) {
				t.Errorf("after the export: layers %v (base exported: %v), want %v from the cache mended", third, exported, first)
			}
		})
	}
}

// replaceFile puts a new file with data at path, leaving the file that was
// there (and its other links) as it was.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestBlobCacheUnusable names a cache directory that cannot be made: the
// commit fails, names it, and writes nothing at the destination; but one
// that a read-only file system keeps from being made only warns.
func TestBlobCacheUnusable(t *testing.T) {
	e := newLayoutReuseEnv(t)
	file := filepath.Join(e.dir(t, "cache"), "a-file")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dest := e.dir(t, "layout")
	_, err := e.b.Commit(e.ctx, ociRef(t, dest, "1"), CommitOptions{SystemContext: e.sys, BlobCacheDir: file})
	if err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("commit with blob cache %s: %v, want an error naming it", file, err)
	}
	if _, serr := os.Stat(dest); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("the failed commit left %s (%v)", dest, serr)
	}
	// Uncompressed, the cache is not used, so not made.
	if _, err := e.b.Commit(e.ctx, ociRef(t, dest, "1"), CommitOptions{SystemContext: e.sys, BlobCacheDir: file, Compression: CompressionNone}); err != nil {
		t.Errorf("uncompressed commit with an unusable blob cache: %v", err)
	}
	// A cache on a read-only file system, not made yet: the commit goes on
	// without it, and says so.
	roParent := e.dir(t, "ro-parent")
	if err := os.Mkdir(roParent, 0o755); err != nil {
		t.Fatal(err)
	}
	ro := mountTmpfs(t, roParent, "1m")
	if out, err := exec.Command("mount", "-o", "remount,ro", ro).CombinedOutput(); err != nil {
		t.Skipf("cannot make %s read-only: %v: %s", ro, err, out)
	}
	warnings := captureWarnings(t)
	roDest := ociRef(t, e.dir(t, "ro-layout"), "1")
	if _, err := e.b.Commit(e.ctx, roDest, CommitOptions{SystemContext: e.sys, BlobCacheDir: ro}); err != nil {
		t.Fatalf("commit with a read-only blob cache: %v", err)
	}
	checkImage(t, roDest, wantImage{Layers: 2})
	if w := warnings.take(); len(w) != 1 || !strings.Contains(w[0], ro) {
		t.Errorf("warnings %q, want one naming the read-only cache", w)
	}
}

// TestBlobCacheForRegistries pushes a container on a store image to one
// registry and then to another with a blob cache: the second push takes
// the base layer's blob from the cache instead of compressing the layer
// again, and the registry serves the same layers.
func TestBlobCacheForRegistries(t *testing.T) {
	e := newLayoutReuseEnv(t)
	one, two := startRegistry(t, e.dir(t, "one")), startRegistry(t, e.dir(t, "two"))
	e.sys = one.sys(t, e.sys)
	opts := CommitOptions{Compression: CompressionGzip, BlobCacheDir: e.dir(t, "cache")}

	first, exported := e.commitTo(t, one.ref(t, "app:1"), opts)
	if !exported {
		t.Fatalf("the base layer was not exported for the first push")
	}
	second, exported := e.commitTo(t, two.ref(t, "app:1"), opts)
	if exported {
		t.Errorf("the base layer was exported again for the second registry, though the cache holds it")
	}
	if !slices.Equal(second, first) {
		t.Errorf("layers %v in the second registry, want %v", second, first)
	}
}

// TestBlobCacheOnAnotherFilesystem keeps the cache on a tmpfs: blobs are
// copied in and out instead of linked, with the same result. A cache whose
// filesystem is full costs the commit nothing but the cache's entry: the
// commit succeeds, warns, and leaves no temporary file in the cache.
func TestBlobCacheOnAnotherFilesystem(t *testing.T) {
	e := newLayoutReuseEnv(t)
	fs := mountTmpfs(t, t.TempDir(), "64m")
	opts := CommitOptions{Compression: CompressionGzip, BlobCacheDir: filepath.Join(fs, "cache")}

	first, exported := e.commitTo(t, ociRef(t, e.dir(t, "first"), "1"), opts)
	if !exported {
		t.Fatalf("the base layer was not exported on the first commit")
	}
	layout := e.dir(t, "second")
	second, exported := e.commitTo(t, ociRef(t, layout, "1"), opts)
	if exported || !slices.Equal(second, first) {
		t.Errorf("layers %v (base exported: %v), want %v from the cache", second, exported, first)
	}
	for _, path := range []string{
		filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(first[0], "sha256:")),
		e.cachedBlob(t, opts.BlobCacheDir, CompressionGzip),
	} {
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil || st.Nlink != 1 {
			t.Errorf("%s: %v, %d links, want a copy of its own", path, err, st.Nlink)
		}
	}

	// Full: a cache on the tmpfs, then a file that takes the space left.
	full := CommitOptions{Compression: CompressionGzip, BlobCacheDir: filepath.Join(fs, "full")}
	if _, err := openBlobCache(full.BlobCacheDir, layerexport.Options{Algorithm: layerexport.Gzip}); err != nil {
		t.Fatal(err)
	}
	fillFilesystem(t, filepath.Join(fs, "filler"))
	if _, exported := e.commitTo(t, ociRef(t, e.dir(t, "full"), "1"), full); !exported {
		t.Errorf("into a full cache: the base layer was not exported")
	}
	if got := e.cachedBlob(t, full.BlobCacheDir, CompressionGzip); got != "" {
		t.Errorf("the full cache records blob %s", got)
	}
	for _, d := range []string{filepath.Join(full.BlobCacheDir, "blobs", "sha256"), filepath.Join(full.BlobCacheDir, "layers")} {
		if left, _ := os.ReadDir(d); len(left) > 0 {
			t.Errorf("files left in %s: %v", d, left)
		}
	}
}

// fillFilesystem writes path until its filesystem has no space left.
func fillFilesystem(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// TestBlobCacheConcurrentCommits commits one container four times at once,
// each into a layout of its own, all with one empty cache: every commit
// succeeds, and the cache ends with one entry and one blob for the base
// layer, whole, which the next commit takes.
func TestBlobCacheConcurrentCommits(t *testing.T) {
	e := newLayoutReuseEnv(t)
	opts := CommitOptions{SystemContext: e.sys, Compression: CompressionGzip, BlobCacheDir: e.dir(t, "cache")}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			_, err := e.b.Commit(e.ctx, ociRef(t, e.dir(t, "layout"), "1"), opts)
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent commit: %v", err)
		}
	}
	for _, sub := range []string{"layers", filepath.Join("blobs", "sha256")} {
		entries, err := os.ReadDir(filepath.Join(opts.BlobCacheDir, sub))
		if err != nil || len(entries) != 1 {
			t.Errorf("%s of the cache: %v (%v), want one file", sub, entries, err)
		}
	}
	if layers, exported := e.commitTo(t, ociRef(t, e.dir(t, "after"), "1"), opts); exported {
		t.Errorf("the base layer was exported after four commits filled the cache (layers %v)", layers)
	}
}

// TestBlobCacheRemovesStalePartials leaves temporary files in a cache, as
// a killed commit would: those older than an hour go when a commit opens
// the cache, a fresh one (a commit writing it now) stays.
func TestBlobCacheRemovesStalePartials(t *testing.T) {
	dir := t.TempDir()
	if _, err := openBlobCache(dir, layerexport.Options{Algorithm: layerexport.Gzip}); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	stale := []string{filepath.Join(dir, "blobs", "sha256", ".add-1.partial"), filepath.Join(dir, "layers", ".entry-1.partial")}
	fresh := filepath.Join(dir, "blobs", "sha256", ".add-2.partial")
	kept := filepath.Join(dir, "layers", "old-but-not-partial.json")
	for _, p := range append(stale, fresh, kept) {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if p != fresh {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := openBlobCache(dir, layerexport.Options{Algorithm: layerexport.Gzip}); err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v, want it removed", p, err)
		}
	}
	for _, p := range []string{fresh, kept} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v, want it kept", p, err)
		}
	}
}
