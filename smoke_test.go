package bricklayer

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"go.podman.io/image/v5/oci/layout"
)

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	store := newTestStore(t)
	b, err := NewBuilder(ctx, store, BuilderOptions{FromImage: "scratch", Container: "work"})
	if err != nil {
		t.Fatal(err)
	}
	mp, err := b.Mount()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(mp, "hello"), []byte("hi"), 0o644)
	dest, err := layout.ParseReference(filepath.Join(t.TempDir(), "oci") + ":latest")
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Commit(ctx, dest, CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s %s", res.ManifestDigest, res.Manifest)
}
