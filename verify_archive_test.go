package bricklayer

import (
	"os"
	"path/filepath"
	"testing"

	"go.podman.io/image/v5/docker/archive"
)

// A docker-archive source names every layer gzip in the manifest it
// synthesises, while the archive holds them as they were written
// (uncompressed when copy.Image wrote them): Verify must not take that for
// a corrupted image.
func TestVerifyDockerArchive(t *testing.T) {
	env := newTestEnv(t)
	b, want := env.newFilledBuilder(t, "work", 8)
	path := filepath.Join(env.dir(t, "archive"), "image.tar")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	ref, err := archive.ParseReference(path + ":localhost/archived:latest")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []Compression{CompressionGzip, CompressionNone} {
		if _, err := b.Commit(env.ctx, ref, CommitOptions{SystemContext: env.sys, Compression: c}); err != nil {
			t.Fatal(err)
		}
		img := checkImage(t, ref, wantImage{Layers: 1})
		compareTrees(t, want, img.Tree)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}
