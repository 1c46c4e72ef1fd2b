package bricklayer

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"go.podman.io/storage"
)

// TestCommitIntoOwnStoreWritesLayerOnce checks that a commit into the
// builder's own store leaves exactly one new layer, named by its chain ID;
// that committing the same content again writes nothing, or, when the
// record of the earlier commit is lost, writes the layer and removes it
// again; and that a changed container is written anew. Each commit reports
// its progress: reads of the layer, and once that it is done, with the
// stored layer's digest and size.
func TestCommitIntoOwnStoreWritesLayerOnce(t *testing.T) {
	env := newTestEnv(t)
	b, err := NewBuilder(env.ctx, env.store, BuilderOptions{FromImage: Scratch, Container: "work"})
	if err != nil {
		t.Fatal(err)
	}
	mp, err := b.Mount()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Unmount()
	if err := os.WriteFile(filepath.Join(mp, "file"), []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	var puts int
	testHookPutLayer = func(string) { puts++ }
	t.Cleanup(func() { testHookPutLayer = nil })
	ctr, err := env.store.Container(b.ContainerID())
	if err != nil {
		t.Fatal(err)
	}

	// commit commits the container as name and checks that it wrote wantPuts
	// layers and left the store with wantLayers more layers than before. It
	// returns the image's top layer.
	commit := func(name string, wantPuts, wantLayers int) *storage.Layer {
		t.Helper()
		before, err := env.store.Layers()
		if err != nil {
			t.Fatal(err)
		}
		puts = 0
		dest := storeRef(t, env.store, name)
		var reads int
		var done []LayerProgress
		res, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys, ExportProgress: func(p LayerProgress) {
			switch {
			case p.LayerID != ctr.LayerID:
				t.Errorf("%s: progress reported for layer %s, want %s", name, p.LayerID, ctr.LayerID)
			case p.Done:
				done = append(done, p)
			case p.Read > 0:
				reads++
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		img := checkImage(t, dest, wantImage{Layers: 1})
		data, err := os.ReadFile(filepath.Join(mp, "file"))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := img.Tree["file"].Content, digest.FromBytes(data); got != want {
			t.Errorf("%s: file has content %s, want %s (%q)", name, got, want, data)
		}
		if puts != wantPuts {
			t.Errorf("%s: %d layers written into the store, want %d", name, puts, wantPuts)
		}
		after, err := env.store.Layers()
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before)+wantLayers {
			t.Errorf("%s: the commit left %d layers, want %d", name, len(after), len(before)+wantLayers)
		}
		stored, err := env.store.Image(res.ImageID)
		if err != nil {
			t.Fatal(err)
		}
		top, err := env.store.Layer(stored.TopLayer)
		if err != nil {
			t.Fatal(err)
		}
		if chain := chainLayerID("", top.UncompressedDigest); !slices.Contains(top.Names, chain) {
			t.Errorf("%s: top layer %s has names %q, not its chain ID %s (diffID %s)", name, top.ID, top.Names, chain, top.UncompressedDigest)
		}
		if reads == 0 || len(done) != 1 || done[0].Digest != top.UncompressedDigest || done[0].Size != top.UncompressedSize || done[0].Read != done[0].Size {
			t.Errorf("%s: %d reads and %+v reported done, want reads and one report of a %d-byte blob %s read whole", name, reads, done, top.UncompressedSize, top.UncompressedDigest)
		}
		return top
	}

	first := commit("localhost/once:latest", 1, 1)
	if again := commit("localhost/again:latest", 0, 0); again.ID != first.ID {
		t.Errorf("second commit's top layer %s, want %s", again.ID, first.ID)
	}

	if err := os.WriteFile(filepath.Join(mp, "file"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed := commit("localhost/changed:latest", 1, 1)
	if changed.ID == first.ID {
		t.Errorf("the changed container was committed as the old layer %s", first.ID)
	}

	// Without the record, the unchanged container is written in one pass,
	// found in the store, and the copy removed.
	dir, err := env.store.ContainerDirectory(b.ContainerID())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, storeRecordFile), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if lost := commit("localhost/lost:latest", 1, 0); lost.ID != changed.ID {
		t.Errorf("commit without the record: top layer %s, want %s", lost.ID, changed.ID)
	}
	// That commit wrote the record again.
	if again := commit("localhost/again:latest", 0, 0); again.ID != changed.ID {
		t.Errorf("commit with the record rewritten: top layer %s, want %s", again.ID, changed.ID)
	}
}

// TestCommitIntoOwnStoreOnItsOwnBase commits three images into the store,
// each built on the one before, and checks that each commit adds exactly
// one layer on the base's stored layers, found by the chain ID the
// destination computes, rather than copying the base anew.
func TestCommitIntoOwnStoreOnItsOwnBase(t *testing.T) {
	env := newTestEnv(t)
	from, parent := Scratch, ""
	for i := range 3 {
		b, err := NewBuilder(env.ctx, env.store, BuilderOptions{FromImage: from, Container: fmt.Sprintf("step%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		mp, err := b.Mount()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mp, fmt.Sprintf("file%d", i)), []byte(fmt.Sprintf("step %d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		before, err := env.store.Layers()
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("localhost/step:%d", i)
		dest := storeRef(t, env.store, name)
		res, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Unmount(); err != nil {
			t.Fatal(err)
		}
		checkImage(t, dest, wantImage{Layers: i + 1})
		after, err := env.store.Layers()
		if err != nil {
			t.Fatal(err)
		}
		if len(after) != len(before)+1 {
			t.Errorf("commit %d left %d layers, want %d", i, len(after), len(before)+1)
		}
		img, err := env.store.Image(res.ImageID)
		if err != nil {
			t.Fatal(err)
		}
		top, err := env.store.Layer(img.TopLayer)
		if err != nil {
			t.Fatal(err)
		}
		if top.Parent != parent {
			t.Errorf("commit %d: top layer %s is on %q, want the base's top layer %q", i, top.ID, top.Parent, parent)
		}
		if chain := chainLayerID(parent, top.UncompressedDigest); !slices.Contains(top.Names, chain) {
			t.Errorf("commit %d: top layer %s has names %q, not its chain ID %s", i, top.ID, top.Names, chain)
		}
		from, parent = name, top.ID
	}
}
