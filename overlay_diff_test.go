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
	"go.podman.io/storage/pkg/archive"
)

// TestOverlayDiffSameAsStore: with the overlay driver making its diffs
// natively, a new layer's diff is read from its upper directory by
// treetar, not by the store; once normalised, it is the store's own diff
// byte for byte, in a layer with deletions (whiteouts, which the kernel
// makes one shared inode), a directory removed and made again (opaque), a
// removed tree and changed files; and so is the squash of the new layers,
// which reads the same directory.
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
	writeTree(t, builderRoot(t, base), time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC), map[string]string{
		"keep": "keep", "gone1": "1", "gone2": "2", "over": "aaaa",
		"dir/a": "a", "dir/b": "b", "rep/old1": "1", "rep/sub/x": "x",
		"deep/er/est/file": "deep",
	})
	b, mp := deriveFrom(t, store, base)
	for _, p := range []string{"gone1", "gone2", "dir/a", "rep", "deep/er"} {
		if err := os.RemoveAll(filepath.Join(mp, p)); err != nil {
			t.Fatal(err)
		}
	}
	writeTree(t, mp, time.Time{}, map[string]string{"rep/new": "new", "over": "bbbb", "dir/added": "added"})
	ctr, err := store.Container(b.ContainerID())
	if err != nil {
		t.Fatal(err)
	}
	rc, err := store.Diff("", ctr.LayerID, &storage.DiffOptions{Compression: new(archive.Uncompressed)})
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	err = tarnorm.Copy(&want, rc, tarnorm.Options{}, 0)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	names := tarNames(t, want.Bytes())
	for _, name := range []string{".wh.gone1", ".wh.gone2", "dir/.wh.a", "deep/.wh.er", "rep/.wh..wh..opq", "rep/new", "dir/added"} {
		if !slices.Contains(names, name) {
			t.Fatalf("the store's diff lacks %s, which the test means to cover: %v", name, names)
		}
	}

	var read []string
	testHookUpperDiff = func(id string) { read = append(read, id) }
	t.Cleanup(func() { testHookUpperDiff = nil })
	for _, opts := range []CommitOptions{{Compression: CompressionNone}, {Compression: CompressionNone, SquashNewLayers: true}} {
		dir := filepath.Join(t.TempDir(), "oci")
		dest, err := layout.ParseReference(dir + ":derived")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Commit(ctx, dest, opts); err != nil {
			t.Fatal(err)
		}
		layers := readOCILayers(t, dir)
		if len(layers) != 2 {
			t.Fatalf("squash=%v: %d layers, want 2", opts.SquashNewLayers, len(layers))
		}
		if !slices.Equal(read, []string{ctr.LayerID}) {
			t.Errorf("squash=%v: upper directories read: %v, want the container's layer's", opts.SquashNewLayers, read)
		}
		read = nil
		if !bytes.Equal(layers[1], want.Bytes()) {
			t.Errorf("squash=%v: the new layer differs from the store's diff:\n ours:  %v\n store: %v", opts.SquashNewLayers, tarNames(t, layers[1]), names)
		}
	}
}
