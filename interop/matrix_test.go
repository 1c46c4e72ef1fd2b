package interop

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/bricklayer/bricklayer"
	"github.com/bricklayer/bricklayer/docker"
	"github.com/bricklayer/bricklayer/internal/testutil"
	"go.podman.io/image/v5/transports/alltransports"
)

// TestCommitMatrix commits a two-layer container (a varied base tree, then
// deletions, replacements and additions on top) in every valid manifest
// type and compression to every transport, and has outside tools read each
// image back.
func TestCommitMatrix(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	registry := testutil.StartRegistry(t)
	sys := e.sysContext(t)

	base, mp := mountBuilder(t, ctx, e.store, bricklayer.BuilderOptions{FromImage: "scratch", Container: "matrix-base"})
	testutil.FillTree(t, mp, 1)
	baseRef := e.newTarget(t, tStorage, "", "", "interop-matrix-base")
	if _, err := base.Commit(ctx, baseRef.ref, bricklayer.CommitOptions{SystemContext: sys, SignaturePolicyPath: e.policy}); err != nil {
		t.Fatalf("committing the base image: %v", err)
	}

	b, rootfs := mountBuilder(t, ctx, e.store, bricklayer.BuilderOptions{FromImage: baseRef.tag, Container: "matrix", SystemContext: sys, SignaturePolicyPath: e.policy})
	testutil.ChangeTree(t, rootfs, 2)

	e.commitEverywhere(t, ctx, b, registry, "matrix-", func(t *testing.T, f format, tg target, res bricklayer.CommitResult) {
		checkImage(t, e, tg, expect{format: f, result: res, rootfs: rootfs, layers: 2})
	})
}

// commitEverywhere commits b in every valid format to every transport, in a
// subtest each (the formats in parallel, each with a blob-info cache of its
// own), naming the images prefix and the format, and calls check on each.
func (e *env) commitEverywhere(t *testing.T, ctx context.Context, b *bricklayer.Builder, registry, prefix string, check func(t *testing.T, f format, tg target, res bricklayer.CommitResult)) {
	t.Helper()
	for _, f := range validFormats {
		t.Run(f.String(), func(t *testing.T) {
			t.Parallel()
			sys := e.sysContext(t)
			for _, tr := range allTransports {
				t.Run(tr, func(t *testing.T) {
					tg := e.newTarget(t, tr, t.TempDir(), registry, sanitize(prefix+f.String()))
					res, err := b.Commit(ctx, tg.ref, bricklayer.CommitOptions{
						ManifestType:        f.manifestType,
						Compression:         f.compression,
						SystemContext:       sys,
						SignaturePolicyPath: e.policy,
					})
					if err != nil {
						t.Fatalf("committing to %s: %v", tg.name, err)
					}
					check(t, f, tg, res)
				})
			}
		})
	}
}

// TestZstdInDockerRejected: a Docker v2s2 image cannot have zstd layers;
// Commit and ImageRef refuse the pair before anything is written.
func TestZstdInDockerRejected(t *testing.T) {
	ctx := context.Background()
	store, _, _ := newStore(t)
	b, err := bricklayer.NewBuilder(ctx, store, bricklayer.BuilderOptions{FromImage: "scratch"})
	if err != nil {
		t.Fatal(err)
	}
	opts := bricklayer.CommitOptions{ManifestType: docker.V2S2MediaTypeManifest, Compression: bricklayer.CompressionZstd}
	dir := filepath.Join(t.TempDir(), "layout")
	dest, err := alltransports.ParseImageName("oci:" + dir + ":latest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx, dest, opts); !errors.Is(err, bricklayer.ErrUnsupportedCompression) {
		t.Errorf("Commit(v2s2, zstd) = %v, want ErrUnsupportedCompression", err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused commit left %s behind (%v)", dir, err)
	}
	if _, err := b.ImageRef(opts); !errors.Is(err, bricklayer.ErrUnsupportedCompression) {
		t.Errorf("ImageRef(v2s2, zstd) = %v, want ErrUnsupportedCompression", err)
	}
}

// unmount undoes a builder's Mount so that the store can shut down.
func unmount(t *testing.T, b *bricklayer.Builder) {
	if err := b.Unmount(); err != nil {
		t.Logf("unmounting %s: %v", b.ContainerName(), err)
	}
}
