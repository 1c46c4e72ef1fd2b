package bricklayer

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bricklayer/bricklayer/internal/tarnorm"
	"go.podman.io/image/v5/oci/layout"
	"go.podman.io/storage"
)

// TestOverlayDiffSameAsStore: with the overlay driver making its diffs
// natively, a new layer's diff is read from its upper directory by
// treetar, not by the store; once normalised, it is the store's own diff
// byte for byte, in a layer with deletions (whiteouts, which the kernel
// makes one shared inode), a directory removed and made again (opaque), a
// removed tree and changed files; and so is the squash of the new layers,
// which reads the same directory. A layer without a parent (a container
// from scratch) is read from its upper directory too, with or without a
// squash, and is the store's diff of it.
func TestOverlayDiffSameAsStore(t *testing.T) {
	ctx := t.Context()
	store := newTestStoreWith(t, "overlay")
	if comparesTrees(store) {
		t.Skip("the overlay driver does not make its diffs natively here")
	}
	base, err := NewBuilder(ctx, store, BuilderOptions{FromImage: Scratch, Container: "base"})
	if err != nil {
		t.Fatal(err)
	}
	baseRoot := builderRoot(t, base)
	writeTree(t, baseRoot, time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC), map[string]string{
		"keep": "keep", "gone1": "1", "gone2": "2", "over": "aaaa",
		"dir/a": "a", "dir/b": "b", "rep/old1": "1", "rep/sub/x": "x",
		"deep/er/est/file": "deep", "never": "removed before the commit",
	})
	// Removed from the layer that made it, it leaves no whiteout.
	if err := os.Remove(filepath.Join(baseRoot, "never")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(baseRoot, "keep"), filepath.Join(baseRoot, "dir/keep-link")); err != nil {
		t.Fatal(err)
	}
	b, mp := deriveFrom(t, store, base)
	for _, p := range []string{"gone1", "gone2", "dir/a", "rep", "deep/er"} {
		if err := os.RemoveAll(filepath.Join(mp, p)); err != nil {
			t.Fatal(err)
		}
	}
	writeTree(t, mp, time.Time{}, map[string]string{"rep/new": "new", "over": "bbbb", "dir/added": "added"})
	baseCtr, err := store.Container(base.ContainerID())
	if err != nil {
		t.Fatal(err)
	}
	ctr, err := store.Container(b.ContainerID())
	if err != nil {
		t.Fatal(err)
	}
	want := storeDiff(t, store, ctr.LayerID)
	names := tarNames(t, want)
	for _, name := range []string{".wh.gone1", ".wh.gone2", "dir/.wh.a", "deep/.wh.er", "rep/.wh..wh..opq", "rep/new", "dir/added"} {
		if !slices.Contains(names, name) {
			t.Fatalf("the store's diff lacks %s, which the test means to cover: %v", name, names)
		}
	}
	// The base container's layer has no parent: its diff is its whole
	// upper directory, for the driver as for treetar.
	commitsAsStore(t, base, baseCtr.LayerID, 1, storeDiff(t, store, baseCtr.LayerID))
	commitsAsStore(t, b, ctr.LayerID, 2, want)
}

// storeDiff returns the store's diff of layer id against its parent,
// normalised.
func storeDiff(t *testing.T, store storage.Store, id string) []byte {
	t.Helper()
	var diff bytes.Buffer
	if err := tarnorm.Copy(&diff, bytes.NewReader(rawStoreDiff(t, store, id)), tarnorm.Options{}, 0); err != nil {
		t.Fatal(err)
	}
	return diff.Bytes()
}

// commitsAsStore commits b to an OCI layout, as it is and with its new
// layers squashed, and checks that the image has wantLayers layers, and
// that its top layer, whose ID is layerID, was read from its upper
// directory and is want byte for byte.
func commitsAsStore(t *testing.T, b *Builder, layerID string, wantLayers int, want []byte) {
	t.Helper()
	var read []string
	testHookUpperDiff = func(id string) { read = append(read, id) }
	t.Cleanup(func() { testHookUpperDiff = nil })
	for _, opts := range []CommitOptions{{Compression: CompressionNone}, {Compression: CompressionNone, SquashNewLayers: true}} {
		dir := filepath.Join(t.TempDir(), "oci")
		dest, err := layout.ParseReference(dir + ":derived")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Commit(t.Context(), dest, opts); err != nil {
			t.Fatal(err)
		}
		layers := readOCILayers(t, dir)
		if len(layers) != wantLayers {
			t.Fatalf("squash=%v: %d layers, want %d", opts.SquashNewLayers, len(layers), wantLayers)
		}
		if !slices.Equal(read, []string{layerID}) {
			t.Errorf("squash=%v: upper directories read: %v, want layer %s's", opts.SquashNewLayers, read, layerID)
		}
		read = nil
		if top := layers[len(layers)-1]; !bytes.Equal(top, want) {
			t.Errorf("squash=%v: the top layer differs from the store's diff:\n ours:  %v\n store: %v", opts.SquashNewLayers, tarNames(t, top), tarNames(t, want))
		}
	}
}
