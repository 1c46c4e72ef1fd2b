package bricklayer

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/pkg/blobinfocache"
	"go.podman.io/image/v5/transports"
	"go.podman.io/image/v5/types"
)

// layoutReuseEnv is a container on a one-layer store image (stored
// uncompressed, as buildah and podman store what they build), with a hook
// that records which layers each commit exports.
type layoutReuseEnv struct {
	*testEnv
	b    *Builder
	base baseLayer

	mu       sync.Mutex
	exported []string
}

func newLayoutReuseEnv(t *testing.T) *layoutReuseEnv {
	t.Helper()
	e := &layoutReuseEnv{testEnv: newTestEnv(t)}
	e.commitBase(t, "base", "localhost/base:1", 31)
	var mp string
	e.b, mp = e.newMountedBuilder(t, "localhost/base:1", "derived")
	if err := os.WriteFile(filepath.Join(mp, "new"), []byte("new layer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.b.mu.Lock()
	base := slices.Clone(e.b.state.BaseLayers)
	e.b.mu.Unlock()
	if len(base) != 1 {
		t.Fatalf("the builder has %d base layers, want 1", len(base))
	}
	e.base = base[0]
	testHookExportStarted = func(id string) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.exported = append(e.exported, id)
	}
	t.Cleanup(func() { testHookExportStarted = nil })
	return e
}

// forgetPairs gives the commits that follow a blob info cache of their
// own, empty: no pair of blob and diffID is known there.
func (e *layoutReuseEnv) forgetPairs(t *testing.T) {
	sys := *e.sys
	sys.BlobInfoCacheDir = t.TempDir()
	e.sys = &sys
}

// paired says whether the blob info cache pairs blob with the base layer.
func (e *layoutReuseEnv) paired(blob string) bool {
	return blobinfocache.DefaultCache(e.sys).UncompressedDigest(digest.Digest(blob)) == e.base.DiffID
}

// commit commits the container to tag in the layout dir with compression c,
// checks the image read back (every digest and diffID recomputed), and
// returns its layers and whether the base layer was exported.
func (e *layoutReuseEnv) commit(t *testing.T, dir, tag string, c Compression) (layers []string, baseExported bool) {
	t.Helper()
	return e.commitTo(t, ociRef(t, dir, tag), CommitOptions{Compression: c})
}

// commitTo commits the container to ref with opts (and the env's
// SystemContext), as commit does.
func (e *layoutReuseEnv) commitTo(t *testing.T, ref types.ImageReference, opts CommitOptions) (layers []string, baseExported bool) {
	t.Helper()
	e.mu.Lock()
	e.exported = nil
	e.mu.Unlock()
	opts.SystemContext = e.sys
	// A base layer not exported is reported taken, once.
	var reportedTaken []string
	progress := opts.ExportProgress
	opts.ExportProgress = func(p LayerProgress) {
		if p.Taken != "" {
			e.mu.Lock()
			reportedTaken = append(reportedTaken, p.LayerID)
			e.mu.Unlock()
		}
		if progress != nil {
			progress(p)
		}
	}
	res, err := e.b.Commit(e.ctx, ref, opts)
	if err != nil {
		t.Fatalf("%s: %v", transports.ImageName(ref), err)
	}
	checkResult(t, res, checkImageWith(t, ref, e.sys, wantImage{Layers: 2, LayerMediaType: layerMediaType(v1.MediaTypeImageManifest, opts.Compression)}))
	e.mu.Lock()
	defer e.mu.Unlock()
	if !slices.ContainsFunc(e.exported, func(id string) bool { return id != e.base.LayerID }) {
		t.Errorf("%s: the new layer was not exported (exported %v)", transports.ImageName(ref), e.exported)
	}
	baseExported = slices.Contains(e.exported, e.base.LayerID)
	if opts.Compression != CompressionNone && baseExported == slices.Equal(reportedTaken, []string{e.base.LayerID}) {
		t.Errorf("%s: base layer exported: %v, reported taken: %v", transports.ImageName(ref), baseExported, reportedTaken)
	}
	return layerDigests(t, res.Manifest), baseExported
}

// TestLayoutReusesCompressedBaseLayers commits a container on a store image
// into one OCI layout again and again. The first commit with a compression
// exports the base layer compressed; the next ones find its blob in the
// layout, check it (with the blob info cache's pair, or without one), and
// export only the new layer. A layout another tool
// wrote (copy.Image, compressing with its own gzip) lends its blob too.
func TestLayoutReusesCompressedBaseLayers(t *testing.T) {
	e := newLayoutReuseEnv(t)
	dir := e.dir(t, "layout")

	first, exported := e.commit(t, dir, "gzip-1", CompressionGzip)
	if !exported {
		t.Errorf("gzip-1: the base layer was not exported into an empty layout")
	}
	if !e.paired(first[0]) {
		t.Errorf("gzip-1: the blob info cache does not pair the exported base layer %s with its diffID", first[0])
	}
	second, exported := e.commit(t, dir, "gzip-2", CompressionGzip)
	if exported {
		t.Errorf("gzip-2: the base layer was exported again, though the layout holds it")
	}
	if second[0] != first[0] {
		t.Errorf("gzip-2: base layer %s, want the layout's %s", second[0], first[0])
	}
	// Without the cache's pair, the blob is decompressed to be checked, and
	// the pair recorded.
	e.forgetPairs(t)
	again, exported := e.commit(t, dir, "gzip-3", CompressionGzip)
	if exported || again[0] != first[0] {
		t.Errorf("gzip-3: base layer %s (exported: %v), want the layout's %s taken", again[0], exported, first[0])
	}
	if !e.paired(first[0]) {
		t.Errorf("gzip-3: the blob info cache does not pair the checked base layer %s with its diffID", first[0])
	}

	// Another compression: the gzip blob is no use.
	third, exported := e.commit(t, dir, "zstd-1", CompressionZstd)
	if !exported {
		t.Errorf("zstd-1: the base layer was not exported, though the layout holds it only gzip-compressed")
	}
	if third[0] == first[0] {
		t.Errorf("zstd-1: base layer %s is the gzip blob", third[0])
	}
	fourth, exported := e.commit(t, dir, "zstd-2", CompressionZstd)
	if exported || fourth[0] != third[0] {
		t.Errorf("zstd-2: base layer %s (exported: %v), want the layout's %s taken", fourth[0], exported, third[0])
	}

	// The base image copied into a layout by copy.Image, which compresses
	// it itself.
	other := e.dir(t, "other")
	copyImage(t, e.ctx, ociRef(t, other, "base"), storeRef(t, e.store, "localhost/base:1"), e.sys)
	copied, _ := ociLayout{t, other}.manifest("base")
	if len(copied.Layers) != 1 || copied.Layers[0].MediaType != v1.MediaTypeImageLayerGzip {
		t.Fatalf("copy.Image wrote layers %+v, want one gzip layer", copied.Layers)
	}
	layers, exported := e.commit(t, other, "derived", CompressionGzip)
	if exported || layers[0] != copied.Layers[0].Digest.String() {
		t.Errorf("derived: base layer %s (exported: %v), want copy.Image's %s taken", layers[0], exported, copied.Layers[0].Digest)
	}
}

// TestLayoutReuseChecksTheBlob tampers with a layout in the ways that would
// make a base layer's blob there wrong: the blob file's compressed bytes, its
// gzip header (the layer is still in it, but the blob is not the one its name
// says), and an image that pairs the base layer's diffID with another
// layer's blob.
// No such blob may be taken, whether the blob info cache pairs the blob
// with the layer (only the blob's digest is checked) or not (it is
// decompressed too): the base layer is exported again, and the new image
// reads back whole.
func TestLayoutReuseChecksTheBlob(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(l ociLayout, m v1.Manifest)
	}{
		{"bytes", func(l ociLayout, m v1.Manifest) {
			// Same size, other bytes: a disk error, or a hand edit.
			flipByte(l.t, l.blobPath(m.Layers[0].Digest), -100)
		}},
		{"header", func(l ociLayout, m v1.Manifest) {
			// The gzip header's OS byte: the blob still decompresses to the
			// layer, but it is no longer the blob its name says.
			flipByte(l.t, l.blobPath(m.Layers[0].Digest), 9)
		}},
		{"pairing", func(l ociLayout, m v1.Manifest) {
			// The config claims the new layer's blob holds the base layer;
			// the base layer's own blob goes.
			if err := os.Remove(l.blobPath(m.Layers[0].Digest)); err != nil {
				l.t.Fatal(err)
			}
			l.editManifest("first", true, func(m *v1.Manifest) { m.Layers[0] = m.Layers[1] })
		}},
	} {
		withAndWithoutPairs(t, tc.name, func(t *testing.T, forget bool) {
			e := newLayoutReuseEnv(t)
			dir := e.dir(t, "layout")
			first, _ := e.commit(t, dir, "first", CompressionGzip)
			l := ociLayout{t, dir}
			m, _ := l.manifest("first")
			tc.tamper(l, m)
			if forget {
				e.forgetPairs(t)
			}

			second, exported := e.commit(t, dir, "second", CompressionGzip)
			if !exported {
				t.Errorf("the base layer was not exported: a tampered blob was taken")
			}
			if second[0] != first[0] {
				t.Errorf("base layer %s, want %s exported as before", second[0], first[0])
			}
		})
	}
}

// withAndWithoutPairs runs f as subtest name, and again as name/no-pairs
// with forget set: there f is to give its commits an empty blob info cache
// (forgetPairs) after it has damaged a blob, so that the blob is checked by
// decompressing it, not only by its digest.
func withAndWithoutPairs(t *testing.T, name string, f func(t *testing.T, forget bool)) {
	t.Run(name, func(t *testing.T) { f(t, false) })
	t.Run(name+"/no-pairs", func(t *testing.T) { f(t, true) })
}

// TestLayoutBlobCandidates reads a layout whose index, manifests and
// configs are partly broken or hostile: what cannot be read is left out,
// and no path outside the layout's blobs is looked at.
func TestLayoutBlobCandidates(t *testing.T) {
	e := newLayoutReuseEnv(t)
	dir := e.dir(t, "layout")
	first, _ := e.commit(t, dir, "first", CompressionGzip)
	l := ociLayout{t, dir}
	m, _ := l.manifest("first")
	blobDir := filepath.Join(dir, "blobs", "sha256")

	got := readLayoutBlobs(blobDir).candidates(e.base.DiffID, CompressionGzip, e.base.Descriptor)
	if len(got) != 1 || got[0].Digest.String() != first[0] || got[0].path != filepath.Join(blobDir, m.Layers[0].Digest.Encoded()) {
		t.Fatalf("candidates %+v, want the first image's base layer %s", got, first[0])
	}
	if got := readLayoutBlobs(blobDir).candidates(e.base.DiffID, CompressionZstd, e.base.Descriptor); len(got) != 0 {
		t.Errorf("zstd candidates %+v, want none", got)
	}

	// A manifest pointing outside the layout, one with a wrong size, and a
	// config whose digest does not match its bytes.
	outside := digest.Digest("sha256:../../../../etc/passwd")
	l.setIndexEntry("outside", v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: outside, Size: 10})
	l.setIndexEntry("wrong-size", v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: m.Config.Digest, Size: m.Config.Size + 1})
	l.editManifest("first", false, func(m *v1.Manifest) { m.Layers[0].Size++ })
	if got := readLayoutBlobs(blobDir).candidates(e.base.DiffID, CompressionGzip, e.base.Descriptor); len(got) != 0 {
		t.Errorf("candidates %+v from a layout whose only image's manifest no longer matches its digest, want none", got)
	}

	// No index at all.
	if err := os.Remove(filepath.Join(dir, "index.json")); err != nil {
		t.Fatal(err)
	}
	if got := readLayoutBlobs(blobDir).candidates(e.base.DiffID, CompressionGzip, e.base.Descriptor); len(got) != 0 {
		t.Errorf("candidates %+v from a layout without index.json, want none", got)
	}
	// The base image's own descriptor still counts when its blob is there.
	own := v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: m.Layers[0].Digest, Size: m.Layers[0].Size}
	if got := readLayoutBlobs(blobDir).candidates(e.base.DiffID, CompressionGzip, own); len(got) != 1 || got[0].Digest != own.Digest {
		t.Errorf("candidates %+v, want the base image's own blob %s", got, own.Digest)
	}
}
