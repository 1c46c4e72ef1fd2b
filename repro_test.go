package bricklayer

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/bricklayer/bricklayer/docker"
	"go.podman.io/image/v5/directory"
	"go.podman.io/image/v5/types"
	"golang.org/x/sys/unix"
)

// setTimes sets the access and modification times of root and of
// everything below it, symlinks included, to when.
func setTimes(t *testing.T, root string, when time.Time) {
	t.Helper()
	tv := []unix.Timeval{unix.NsecToTimeval(when.UnixNano()), unix.NsecToTimeval(when.UnixNano())}
	// Children first: setting a directory's time does not change it again,
	// but be safe against any later write into it.
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		paths = append(paths, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := len(paths) - 1; i >= 0; i-- {
		if err := unix.Lutimes(paths[i], tv); err != nil {
			t.Fatalf("setting the times of %s: %v", paths[i], err)
		}
	}
}

// reproDest is one destination the reproducibility test commits to.
type reproDest struct {
	name        string
	mtype       string
	compression Compression
	transport   string // "oci", "dir" or "storage"
	// squashNew sets SquashNewLayers: the new layer is read from the list
	// of its changes and written as the composed layers are.
	squashNew bool
}

var reproDests = []reproDest{
	{"oci-gzip", "", CompressionGzip, "oci", false},
	{"oci-zstd", "", CompressionZstd, "oci", false},
	{"oci-none", "", CompressionNone, "oci", false},
	{"docker-gzip", docker.V2S2MediaTypeManifest, CompressionGzip, "dir", false},
	{"storage", "", CompressionGzip, "storage", false},
	{"oci-squash-new-layers", "", CompressionGzip, "oci", true},
}

// reproCase is one way of making the same content twice.
type reproCase struct {
	name string
	// rewrite sets RewriteTimestamps; fixMtimes has the test set every
	// file's time itself.
	rewrite, fixMtimes bool
	// same: the two commits must be byte-identical. The control case
	// leaves the file times as they were written, which must show.
	same bool
}

var reproCases = []reproCase{
	{"rewrite-timestamps", true, false, true},
	{"fixed-mtimes", false, true, true},
	{"control", false, false, false},
}

// reproCommits makes, in a store of its own, a base image and a derived
// image of the same content as every other call makes (fillTree's files,
// then additions, a change and deletions), and commits the derived one to
// every reproDest. It returns the images read back, by destination name
// ("base" for the base image).
func reproCommits(t *testing.T, c reproCase, epoch, fileTime time.Time) map[string]readImage {
	t.Helper()
	env := newTestEnv(t)
	out := map[string]readImage{}
	opts := func(mtype string, compression Compression) CommitOptions {
		return CommitOptions{
			ManifestType:      mtype,
			Compression:       compression,
			SourceDateEpoch:   &epoch,
			RewriteTimestamps: c.rewrite,
			CreatedBy:         "repro " + c.name,
			SystemContext:     env.sys,
		}
	}

	base, mp := env.newMountedBuilder(t, Scratch, "base")
	fillTree(t, mp, 42)
	if c.fixMtimes {
		setTimes(t, mp, fileTime)
	}
	baseRef := storeRef(t, env.store, "localhost/base:1")
	if _, err := base.Commit(env.ctx, baseRef, opts("", CompressionGzip)); err != nil {
		t.Fatal(err)
	}
	if err := base.Unmount(); err != nil {
		t.Fatal(err)
	}
	out["base"] = checkImage(t, baseRef, wantImage{Layers: 1})

	b, mp := env.newMountedBuilder(t, "localhost/base:1", "derived")
	if err := os.WriteFile(filepath.Join(mp, "added"), []byte("added"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mp, "dir/block"), []byte("changed"), 0o640); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"one", "dir/sub", "link-dir"} {
		if err := os.RemoveAll(filepath.Join(mp, p)); err != nil {
			t.Fatal(err)
		}
	}
	if c.fixMtimes {
		setTimes(t, mp, fileTime)
	}
	for _, d := range reproDests {
		var dest types.ImageReference
		switch d.transport {
		case "oci":
			dest = ociRef(t, env.dir(t, "oci"), "latest")
		case "dir":
			ref, err := directory.NewReference(env.dir(t, "dir"))
			if err != nil {
				t.Fatal(err)
			}
			dest = ref
		case "storage":
			dest = storeRef(t, env.store, "localhost/derived:1")
		}
		o := opts(d.mtype, d.compression)
		o.SquashNewLayers = d.squashNew
		res, err := b.Commit(env.ctx, dest, o)
		if err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		img := checkImage(t, dest, wantImage{Layers: 2})
		checkResult(t, res, img)
		if !img.Config.Created.Equal(epoch) {
			t.Errorf("%s: created %v, want %v", d.name, img.Config.Created, epoch)
		}
		for i, h := range img.Config.History {
			if h.Created == nil || !h.Created.Equal(epoch) {
				t.Errorf("%s: history entry %d created %v, want %v", d.name, i, h.Created, epoch)
			}
		}
		out[d.name] = img
	}
	return out
}

// TestReproducibleCommits commits the same content twice, from two stores
// (so two containers with different IDs and paths), a few seconds apart
// (so files written anew have other times), with GOMAXPROCS 1 and then 8,
// and checks that the manifests and configs are byte-identical for every
// compression and destination when SourceDateEpoch is set and the file
// times are either clamped by RewriteTimestamps or set by the caller.
func TestReproducibleCommits(t *testing.T) {
	if testing.Short() {
		t.Skip("commits a dozen images and waits for the clock")
	}
	epoch := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	fileTime := time.Date(2019, 1, 2, 3, 4, 5, 0, time.UTC)
	runs := make([]map[string]map[string]readImage, 2)
	for i, procs := range []int{1, 8} {
		if i > 0 {
			// Whole seconds apart: tar keeps whole-second times.
			time.Sleep(1100 * time.Millisecond)
		}
		runs[i] = map[string]map[string]readImage{}
		old := runtime.GOMAXPROCS(procs)
		for _, c := range reproCases {
			runs[i][c.name] = reproCommits(t, c, epoch, fileTime)
		}
		runtime.GOMAXPROCS(old)
	}

	for _, c := range reproCases {
		t.Run(c.name, func(t *testing.T) {
			first, second := runs[0][c.name], runs[1][c.name]
			differ := 0
			for _, name := range append([]string{"base"}, reproDestNames()...) {
				a, b := first[name], second[name]
				same := bytes.Equal(a.Manifest, b.Manifest) && a.ConfigDigest == b.ConfigDigest
				if !same {
					differ++
				}
				if c.same && !same {
					t.Errorf("%s: manifests %s and %s, configs %s and %s", name, a.ManifestDigest, b.ManifestDigest, a.ConfigDigest, b.ConfigDigest)
					for i := range min(len(a.Layers), len(b.Layers)) {
						if a.Layers[i].DiffID != b.Layers[i].DiffID {
							t.Errorf("%s: layer %d diffID %s, then %s", name, i, a.Layers[i].DiffID, b.Layers[i].DiffID)
						}
					}
				}
			}
			if !c.same && differ == 0 {
				t.Error("commits of files written at different times are identical without fixed times: the test cannot see file times")
			}
			if c.same {
				// A derived image keeps the base image's layer: its tar
				// (diffID) always, its blob too when the compression is the
				// base's.
				baseLayer := first["base"].Layers[0]
				for _, name := range reproDestNames() {
					got := first[name].Layers[0]
					if got.DiffID != baseLayer.DiffID || (got.MediaType == baseLayer.MediaType && got.Digest != baseLayer.Digest) {
						t.Errorf("%s: base layer %s (diffID %s), the base image's %s (%s)", name, got.Digest, got.DiffID, baseLayer.Digest, baseLayer.DiffID)
					}
				}
			}
		})
	}
}

func reproDestNames() []string {
	var names []string
	for _, d := range reproDests {
		names = append(names, d.name)
	}
	return names
}
