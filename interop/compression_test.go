package interop

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/bricklayer/bricklayer"
	"go.podman.io/image/v5/transports/alltransports"
	"go.podman.io/image/v5/types"
)

// TestCommitHonoursCompression: every layer an OCI layout or a dir: image
// receives has the compression the commit asked for, the base image's
// layers (from the store, with no origin to serve their blobs) as well as
// the new one, in both manifest types; a docker-archive, which holds Docker
// images with uncompressed layers only, takes every format. It needs no
// tools. On the branch's first base it failed: "none" came out gzip in oci:
// and base layers came out uncompressed in dir: and gzip in zstd commits.
// The same holds with SquashNewLayers (before 6799e69 its base layers came
// out uncompressed in oci: and dir:), and with a blob cache, the second
// commit taking the base layer from it.
func TestCommitHonoursCompression(t *testing.T) {
	ctx := context.Background()
	store, sys, policy := newPlainStore(t)

	base, err := bricklayer.NewBuilder(ctx, store, bricklayer.BuilderOptions{FromImage: "scratch"})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, base, "base.txt", "in the base image\n")
	commitToStore(t, ctx, store, base, "localhost/compression-base:latest", sys, policy)
	b, err := bricklayer.NewBuilder(ctx, store, bricklayer.BuilderOptions{FromImage: "localhost/compression-base:latest", SystemContext: sys, SignaturePolicyPath: policy})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, b, "top.txt", "in the new layer\n")

	cache := t.TempDir()
	variants := []struct {
		name string
		opts bricklayer.CommitOptions
	}{
		{"plain", bricklayer.CommitOptions{}},
		{"squash-new-layers", bricklayer.CommitOptions{SquashNewLayers: true}},
		{"blob-cache", bricklayer.CommitOptions{BlobCacheDir: cache}},
		{"blob-cache-again", bricklayer.CommitOptions{BlobCacheDir: cache}},
	}
	for _, v := range variants {
		for _, f := range validFormats {
			for _, transport := range []string{tOCI, tDir, tDocArchive} {
				commitWithCompression(t, ctx, b, v.name, v.opts, f, transport, sys, policy)
			}
		}
	}
}

// commitWithCompression commits b in format f to a new image of transport,
// with opts, and checks every layer's compression.
func commitWithCompression(t *testing.T, ctx context.Context, b *bricklayer.Builder, variant string, opts bricklayer.CommitOptions, f format, transport string, sys *types.SystemContext, policy string) {
	t.Run(variant+"/"+f.String()+"/"+transport, func(t *testing.T) {
		name := transport + ":" + filepath.Join(t.TempDir(), "image")
		switch transport {
		case tOCI:
			name += ":latest"
		case tDocArchive:
			name += ":localhost/compression:latest"
		}
		dest, err := alltransports.ParseImageName(name)
		if err != nil {
			t.Fatal(err)
		}
		opts.ManifestType, opts.Compression, opts.SystemContext, opts.SignaturePolicyPath = f.manifestType, f.compression, sys, policy
		res, err := b.Commit(ctx, dest, opts)
		if err != nil {
			t.Fatal(err)
		}
		var m manifestDoc
		if err := json.Unmarshal(res.Manifest, &m); err != nil {
			t.Fatal(err)
		}
		if len(m.Layers) != 2 {
			t.Fatalf("%d layers, want 2:\n%s", len(m.Layers), res.Manifest)
		}
		if mt := writtenManifestType(transport, f.manifestType); res.ManifestType != mt {
			t.Errorf("%s: manifest type %s, want %s", name, res.ManifestType, mt)
		}
		if transport == tDocArchive {
			return // its layers are uncompressed whatever the manifest says
		}
		for i, l := range m.Layers {
			c, _ := writtenCompression(transport, f.compression)
			if want := layerMediaType(writtenManifestType(transport, f.manifestType), c); l.MediaType != want {
				t.Errorf("%s: layer %d has media type %s, want %s", name, i, l.MediaType, want)
			}
		}
	})
}

// writeFile writes name with content into the builder's container.
func writeFile(t *testing.T, b *bricklayer.Builder, name, content string) {
	t.Helper()
	mp, err := b.Mount()
	if err != nil {
		t.Fatal(err)
	}
	defer unmount(t, b)
	if err := os.WriteFile(filepath.Join(mp, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
