package bricklayer

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	is "go.podman.io/image/v5/storage"
)

// TestCommitIntoOwnStoreWritesLayerOnce checks that a commit into the
// builder's own store leaves exactly one new layer, named by its chain ID,
// and that committing the same content again writes nothing new.
func TestCommitIntoOwnStoreWritesLayerOnce(t *testing.T) {
	ctx := context.Background()
	store := newTestStore(t)
	b, err := NewBuilder(ctx, store, BuilderOptions{FromImage: Scratch, Container: "work"})
	if err != nil {
		t.Fatal(err)
	}
	mp, err := b.Mount()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mp, "file"), []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, err := store.Layers()
	if err != nil {
		t.Fatal(err)
	}
	dest, err := is.Transport.ParseStoreReference(store, "localhost/once:latest")
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Commit(ctx, dest, CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, dest, wantImage{Layers: 1})
	after, err := store.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before)+1 {
		t.Fatalf("commit left %d layers, want %d", len(after), len(before)+1)
	}
	img, err := store.Image(res.ImageID)
	if err != nil {
		t.Fatal(err)
	}
	top, err := store.Layer(img.TopLayer)
	if err != nil {
		t.Fatal(err)
	}
	if top.ID != chainLayerID("", top.UncompressedDigest) {
		t.Errorf("top layer %s is not named by its chain ID (diffID %s)", top.ID, top.UncompressedDigest)
	}

	dest2, err := is.Transport.ParseStoreReference(store, "localhost/again:latest")
	if err != nil {
		t.Fatal(err)
	}
	res2, err := b.Commit(ctx, dest2, CommitOptions{HistoryTimestamp: nil})
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, dest2, wantImage{Layers: 1})
	again, err := store.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(after) {
		t.Errorf("second commit of the same content left %d layers, want %d", len(again), len(after))
	}
	img2, err := store.Image(res2.ImageID)
	if err != nil {
		t.Fatal(err)
	}
	if img2.TopLayer != img.TopLayer {
		t.Errorf("second commit's top layer %s, want %s", img2.TopLayer, img.TopLayer)
	}
}
