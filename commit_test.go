package bricklayer

import (
	"archive/tar"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bricklayer/bricklayer/docker"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/directory"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/oci/layout"
	is "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
)

// testEnv is a store, a private directory for big temporary files (checked
// empty when the test ends) and a SystemContext that points at it.
// TMPDIR points there too, so t.TempDir must not be called after
// newTestEnv: use env.dir.
type testEnv struct {
	ctx   context.Context
	store storage.Store
	tmp   string
	out   string
	sys   *types.SystemContext
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	return newTestEnvWith(t, "vfs")
}

// newTestEnvWith is newTestEnv with a store of the named graph driver.
func newTestEnvWith(t *testing.T, driver string) *testEnv {
	t.Helper()
	env := &testEnv{ctx: context.Background(), store: newTestStoreWith(t, driver), tmp: t.TempDir(), out: t.TempDir()}
	// The blob info cache is the test's own, not the host's.
	env.sys = &types.SystemContext{BigFilesTemporaryDir: env.tmp, BlobInfoCacheDir: t.TempDir()}
	t.Setenv("TMPDIR", env.tmp)
	t.Cleanup(func() { assertEmptyDir(t, env.tmp) })
	return env
}

// dir returns a new path (not created) for a test's output.
func (env *testEnv) dir(t *testing.T, name string) string {
	t.Helper()
	d, err := os.MkdirTemp(env.out, "out-")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(d, name)
}

// newMountedBuilder makes a builder called name from the image from, mounts
// it and returns it with its mount point; the test's cleanup unmounts it
// unless the test has.
func (env *testEnv) newMountedBuilder(t *testing.T, from, name string) (*Builder, string) {
	t.Helper()
	b, err := NewBuilder(env.ctx, env.store, BuilderOptions{FromImage: from, Container: name})
	if err != nil {
		t.Fatal(err)
	}
	mp, err := b.Mount()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b.MountPoint() != "" {
			b.Unmount()
		}
	})
	return b, mp
}

// newFilledBuilder makes a builder from scratch, writes a tree into it and
// returns both.
func (env *testEnv) newFilledBuilder(t *testing.T, name string, seed uint64) (*Builder, tree) {
	t.Helper()
	b, mp := env.newMountedBuilder(t, Scratch, name)
	return b, fillTree(t, mp, seed)
}

// commitBase fills a builder called name from scratch, commits it into the
// store as the image image, unmounts it and returns the tree it holds.
func (env *testEnv) commitBase(t *testing.T, name, image string, seed uint64) tree {
	t.Helper()
	b, want := env.newFilledBuilder(t, name, seed)
	if _, err := b.Commit(env.ctx, storeRef(t, env.store, image), CommitOptions{SystemContext: env.sys}); err != nil {
		t.Fatal(err)
	}
	if err := b.Unmount(); err != nil {
		t.Fatal(err)
	}
	return want
}

// ociRef is a reference to name in a new OCI layout under the test's
// temporary directory.
func ociRef(t *testing.T, dir, name string) types.ImageReference {
	t.Helper()
	ref, err := layout.NewReference(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func storeRef(t *testing.T, store storage.Store, name string) types.ImageReference {
	t.Helper()
	ref, err := is.Transport.ParseStoreReference(store, name)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// checkResult compares what Commit returned with the image read back.
func checkResult(t *testing.T, res CommitResult, img readImage) {
	t.Helper()
	if res.ManifestDigest != img.ManifestDigest {
		t.Errorf("commit returned manifest digest %s, the image has %s", res.ManifestDigest, img.ManifestDigest)
	}
	if got := digest.FromBytes(res.Manifest); got != res.ManifestDigest {
		t.Errorf("commit returned a manifest of digest %s as %s", got, res.ManifestDigest)
	}
	if res.ManifestType != img.ManifestType {
		t.Errorf("commit returned manifest type %s, the image has %s", res.ManifestType, img.ManifestType)
	}
}

// assertReadableByAll checks that every file under dir can be read by
// anyone, as containers/image makes the files it writes (0644): a layout
// may be served or read by other users.
func assertReadableByAll(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o004 == 0 {
			t.Errorf("%s has mode %v: not readable by all", p, info.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCommitManifestTypesAndCompressions(t *testing.T) {
	env := newTestEnv(t)
	b, want := env.newFilledBuilder(t, "work", 1)
	stamp := time.Date(2020, 2, 3, 4, 5, 6, 0, time.UTC)

	for _, tc := range []struct {
		name        string
		mtype       string
		compression Compression
		// dir: the transport written to, "oci" or "dir".
		transport string
		// wantType and wantLayer are the manifest type and layer media
		// type read back.
		wantType, wantLayer string
		wantErr             error
	}{
		{"oci/gzip", "", CompressionGzip, "oci", v1.MediaTypeImageManifest, v1.MediaTypeImageLayerGzip, nil},
		{"oci/none", v1.MediaTypeImageManifest, CompressionNone, "oci", v1.MediaTypeImageManifest, v1.MediaTypeImageLayer, nil},
		{"oci/zstd", "", CompressionZstd, "oci", v1.MediaTypeImageManifest, v1.MediaTypeImageLayerZstd, nil},
		// An OCI layout holds OCI manifests only: copy.Image converts.
		{"docker-to-oci/gzip", docker.V2S2MediaTypeManifest, CompressionGzip, "oci", v1.MediaTypeImageManifest, v1.MediaTypeImageLayerGzip, nil},
		{"docker-to-oci/none", docker.V2S2MediaTypeManifest, CompressionNone, "oci", v1.MediaTypeImageManifest, v1.MediaTypeImageLayer, nil},
		{"docker-to-oci/zstd", docker.V2S2MediaTypeManifest, CompressionZstd, "oci", "", "", ErrUnsupportedCompression},
		{"docker-dir/gzip", docker.V2S2MediaTypeManifest, CompressionGzip, "dir", manifest.DockerV2Schema2MediaType, docker.V2S2MediaTypeLayer, nil},
		{"docker-dir/none", docker.V2S2MediaTypeManifest, CompressionNone, "dir", manifest.DockerV2Schema2MediaType, docker.V2S2MediaTypeUncompressedLayer, nil},
		{"docker-dir/zstd", docker.V2S2MediaTypeManifest, CompressionZstd, "dir", "", "", ErrUnsupportedCompression},
		{"oci-dir/zstd", "", CompressionZstd, "dir", v1.MediaTypeImageManifest, v1.MediaTypeImageLayerZstd, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := env.dir(t, "image")
			var dest types.ImageReference
			if tc.transport == "oci" {
				dest = ociRef(t, dir, "latest")
			} else {
				var err error
				if dest, err = directory.NewReference(dir); err != nil {
					t.Fatal(err)
				}
			}
			res, err := b.Commit(env.ctx, dest, CommitOptions{
				ManifestType:     tc.mtype,
				Compression:      tc.compression,
				HistoryTimestamp: &stamp,
				CreatedBy:        "test " + tc.name,
				SystemContext:    env.sys,
			})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("commit: got %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), "zstd") {
					t.Errorf("error %q does not name the compression", err)
				}
				assertAbsent(t, dir)
				assertEmptyDir(t, env.tmp)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			assertEmptyDir(t, env.tmp)
			assertReadableByAll(t, dir)
			img := checkImage(t, dest, wantImage{ManifestType: tc.wantType, LayerMediaType: tc.wantLayer, Layers: 1})
			checkResult(t, res, img)
			compareTrees(t, want, img.Tree)
			if res.ImageID != "" {
				t.Errorf("image ID %q for a %s destination", res.ImageID, tc.transport)
			}
			if img.Config.Created == nil || !img.Config.Created.Equal(stamp) {
				t.Errorf("created %v, want %v", img.Config.Created, stamp)
			}
			if h := img.Config.History; len(h) != 1 || h[0].CreatedBy != "test "+tc.name || h[0].Created == nil || !h[0].Created.Equal(stamp) {
				t.Errorf("history %+v", h)
			}
		})
	}
}

// TestCommitChain commits an image A into the store and an image B built on
// it, with files added, changed and removed, to a layout with each
// compression and into the store, with the vfs and the overlay drivers.
func TestCommitChain(t *testing.T) {
	for _, driver := range []string{"vfs", "overlay"} {
		t.Run(driver, func(t *testing.T) { testCommitChain(t, driver) })
	}
}

func testCommitChain(t *testing.T, driver string) {
	env := newTestEnvWith(t, driver)
	a, wantA := env.newFilledBuilder(t, "a", 2)
	refA := storeRef(t, env.store, "localhost/a:latest")
	// Uncompressed, A's blob digest is its diffID, which B can reproduce
	// from the store; a compressed blob it could only reuse (see below).
	resA, err := a.Commit(env.ctx, refA, CommitOptions{Compression: CompressionNone, SystemContext: env.sys})
	if err != nil {
		t.Fatal(err)
	}
	imgA := checkImage(t, refA, wantImage{ManifestType: v1.MediaTypeImageManifest, Layers: 1})
	compareTrees(t, wantA, imgA.Tree)
	mA, err := manifest.OCI1FromManifest(resA.Manifest)
	if err != nil {
		t.Fatal(err)
	}

	b, mp := env.newMountedBuilder(t, "localhost/a:latest", "b")
	if b.FromImageID() != resA.ImageID {
		t.Errorf("builder's base image %s, want %s", b.FromImageID(), resA.ImageID)
	}
	wantB := tree{}
	for k, v := range wantA {
		wantB[k] = v
	}
	if err := os.WriteFile(filepath.Join(mp, "added"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantB["added"] = entry{Type: tar.TypeReg, Mode: 0o644, Size: 3, Content: digest.FromString("new")}
	if err := os.WriteFile(filepath.Join(mp, "dir/block"), []byte("changed"), 0o640); err != nil {
		t.Fatal(err)
	}
	wantB["dir/block"] = entry{Type: tar.TypeReg, Mode: 0o640, Size: 7, Content: digest.FromString("changed")}
	if err := os.Remove(filepath.Join(mp, "one")); err != nil {
		t.Fatal(err)
	}
	delete(wantB, "one")
	if err := os.RemoveAll(filepath.Join(mp, "dir/sub")); err != nil {
		t.Fatal(err)
	}
	removeUnder(wantB, "dir/sub", true)
	// The symlink into the removed directory dangles but stays.

	for _, tc := range []struct {
		name        string
		compression Compression
		layerType   string
	}{
		{"none", CompressionNone, v1.MediaTypeImageLayer},
		{"gzip", CompressionGzip, v1.MediaTypeImageLayerGzip},
		{"store", CompressionNone, v1.MediaTypeImageLayer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refB := ociRef(t, env.dir(t, "oci"), "b")
			if tc.name == "store" {
				refB = storeRef(t, env.store, "localhost/b:latest")
			}
			resB, err := b.Commit(env.ctx, refB, CommitOptions{Compression: tc.compression, SystemContext: env.sys})
			if err != nil {
				t.Fatal(err)
			}
			imgB := checkImage(t, refB, wantImage{ManifestType: v1.MediaTypeImageManifest, Layers: 2})
			checkResult(t, resB, imgB)
			compareTrees(t, wantB, imgB.Tree)
			if len(imgB.Layers) != 2 {
				return
			}
			if got, want := imgB.Layers[0].DiffID, imgA.Layers[0].DiffID; got != want {
				t.Errorf("B's base layer diffID %s, A's %s", got, want)
			}
			if got, want := imgB.Config.RootFS.DiffIDs[0], imgA.Config.RootFS.DiffIDs[0]; got != want {
				t.Errorf("B's config diffID 0 %s, A's %s", got, want)
			}
			// Uncompressed, B keeps A's layer blob as A has it; compressed,
			// B's base layer is A's tar (same diffID, above) compressed as
			// asked.
			if got, want := imgB.Layers[0], mA.Layers[0]; tc.compression == CompressionNone && got.Digest != want.Digest {
				t.Errorf("B's base layer %s, A's %s", got.Digest, want.Digest)
			}
			if got := imgB.Layers[0].MediaType; got != tc.layerType {
				t.Errorf("B's base layer media type %s, want %s", got, tc.layerType)
			}
			if got := imgB.Layers[1].MediaType; got != tc.layerType {
				t.Errorf("B's new layer media type %s, want %s", got, tc.layerType)
			}
			if h := imgB.Config.History; len(h) != 2 || !reflect.DeepEqual(h[0], imgA.Config.History[0]) {
				t.Errorf("B's history %+v does not start with A's %+v", h, imgA.Config.History)
			}
			top := imgB.Layers[1]
			for _, wh := range []string{".wh.one", "dir/.wh.sub"} {
				if e, ok := top.Tree[wh]; !ok || e.Type != tar.TypeReg || e.Size != 0 {
					t.Errorf("B's top layer has no whiteout %s (entries %v)", wh, top.Entries)
				}
			}
			for _, name := range top.Entries {
				if strings.HasPrefix(name, "dir/sub/") || name == "setuid" || name == "private/secret" {
					t.Errorf("B's top layer holds %s, which did not change", name)
				}
			}
			for _, name := range []string{"added", "dir/block"} {
				if _, ok := top.Tree[name]; !ok {
					t.Errorf("B's top layer lacks %s (entries %v)", name, top.Entries)
				}
			}
		})
	}
}

func TestCommitToContainersStorage(t *testing.T) {
	env := newTestEnv(t)
	b, want := env.newFilledBuilder(t, "work", 3)
	for _, tc := range []struct {
		name  string
		mtype string
	}{
		{"oci", ""},
		{"docker", docker.V2S2MediaTypeManifest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "localhost/x-" + tc.name + ":latest"
			extra := "localhost/extra-" + tc.name + ":1"
			dest := storeRef(t, env.store, name)
			res, err := b.Commit(env.ctx, dest, CommitOptions{ManifestType: tc.mtype, SystemContext: env.sys, AdditionalTags: []string{extra}})
			if err != nil {
				t.Fatal(err)
			}
			if res.ImageID == "" {
				t.Fatal("no image ID for a containers-storage destination")
			}
			for _, n := range []string{name, extra, res.ImageID} {
				img, err := env.store.Image(n)
				if err != nil {
					t.Errorf("looking up %s: %v", n, err)
					continue
				}
				if img.ID != res.ImageID {
					t.Errorf("%s is image %s, commit returned %s", n, img.ID, res.ImageID)
				}
			}
			if res.Canonical == nil || res.Canonical.Digest() != res.ManifestDigest || res.Canonical.Name() != "localhost/x-"+tc.name {
				t.Errorf("canonical reference %v, want localhost/x-%s@%s", res.Canonical, tc.name, res.ManifestDigest)
			}
			wantType := v1.MediaTypeImageManifest
			if tc.mtype != "" {
				wantType = tc.mtype
			}
			// By name and by ID, the image reads back whole.
			for _, ref := range []types.ImageReference{dest, storeRef(t, env.store, res.ImageID)} {
				img := checkImage(t, ref, wantImage{ManifestType: wantType, Layers: 1})
				checkResult(t, res, img)
				compareTrees(t, want, img.Tree)
			}
		})
	}
}

func TestBuilderStateAndLifecycle(t *testing.T) {
	env := newTestEnv(t)
	b, err := NewBuilder(env.ctx, env.store, BuilderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b.ContainerName() != "scratch-working-container" || b.FromImage() != Scratch || b.FromImageID() != "" {
		t.Errorf("builder %q from %q (%q)", b.ContainerName(), b.FromImage(), b.FromImageID())
	}
	b2, err := NewBuilder(env.ctx, env.store, BuilderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b2.ContainerName() == b.ContainerName() {
		t.Errorf("two builders named %s", b.ContainerName())
	}
	if _, err := NewBuilder(env.ctx, env.store, BuilderOptions{Container: b.ContainerName()}); err == nil || !strings.Contains(err.Error(), b.ContainerName()) {
		t.Errorf("a second container named %s: %v", b.ContainerName(), err)
	}

	mp, err := b.Mount()
	if err != nil {
		t.Fatal(err)
	}
	if b.MountPoint() != mp {
		t.Errorf("mount point %q, Mount returned %q", b.MountPoint(), mp)
	}
	if err := os.WriteFile(filepath.Join(mp, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.state.CreatedBy = "/bin/sh -c make"
	b.state.HistoryNote = "a note"
	b.state.Annotations = map[string]string{"org.example": "1"}
	b.state.OCIConfig.Config.Env = []string{"A=1"}
	b.state.DockerConfig.Config.Env = []string{"A=1"}
	b.mu.Unlock()
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}

	for _, nameOrID := range []string{b.ContainerName(), b.ContainerID()} {
		o, err := OpenBuilder(env.store, nameOrID)
		if err != nil {
			t.Fatalf("opening %s: %v", nameOrID, err)
		}
		if !reflect.DeepEqual(o.state, b.state) {
			t.Errorf("opened by %s:\n%+v\nsaved:\n%+v", nameOrID, o.state, b.state)
		}
	}

	// A commit from the reopened builder carries the saved state.
	o, err := OpenBuilder(env.store, b.ContainerName())
	if err != nil {
		t.Fatal(err)
	}
	ref := ociRef(t, env.dir(t, "oci"), "latest")
	if _, err := o.Commit(env.ctx, ref, CommitOptions{SystemContext: env.sys}); err != nil {
		t.Fatal(err)
	}
	img := checkImage(t, ref, wantImage{Layers: 1})
	if h := img.Config.History; len(h) != 1 || h[0].CreatedBy != "/bin/sh -c make" || h[0].Comment != "a note" {
		t.Errorf("history %+v", h)
	}
	if !reflect.DeepEqual(img.Config.Config.Env, []string{"A=1"}) {
		t.Errorf("env %v", img.Config.Config.Env)
	}
	m, err := manifest.OCI1FromManifest(img.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if m.Annotations["org.example"] != "1" {
		t.Errorf("manifest annotations %v", m.Annotations)
	}

	if err := b.Unmount(); err != nil {
		t.Fatal(err)
	}
	if b.MountPoint() != "" {
		t.Errorf("mount point %q after Unmount", b.MountPoint())
	}
	if o, err := OpenBuilder(env.store, b.ContainerID()); err != nil || o.MountPoint() != "" {
		t.Errorf("reopened after Unmount: mount point %q, %v", o.MountPoint(), err)
	}
	// Mounting again shows what was written.
	mp, err = b.Mount()
	if err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(mp, "f")); err != nil || string(data) != "x" {
		t.Errorf("reading f after a remount: %q, %v", data, err)
	}

	dir, err := env.store.ContainerDirectory(b.ContainerID())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); err != nil {
		t.Fatalf("state file: %v", err)
	}
	if err := b.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := env.store.Container(b.ContainerID()); !errors.Is(err, storage.ErrContainerUnknown) {
		t.Errorf("container after Delete: %v", err)
	}
	assertAbsent(t, filepath.Join(dir, stateFile))
	for _, nameOrID := range []string{b.ContainerName(), b.ContainerID()} {
		if _, err := OpenBuilder(env.store, nameOrID); !errors.Is(err, ErrContainerNotFound) || !strings.Contains(err.Error(), nameOrID) {
			t.Errorf("opening %s after Delete: %v", nameOrID, err)
		}
	}
	if err := b.Delete(); !errors.Is(err, ErrContainerNotFound) {
		t.Errorf("deleting twice: %v", err)
	}
	// The other builder is untouched.
	if _, err := OpenBuilder(env.store, b2.ContainerName()); err != nil {
		t.Error(err)
	}
}

func TestContainerNameThatIsAnIDPrefix(t *testing.T) {
	// The store resolves unique ID prefixes: a name that is the prefix of
	// another container's ID is still free.
	store := newTestStore(t)
	id := "b" + strings.Repeat("0", 63)
	if _, err := store.CreateContainer(id, nil, "", "", "", nil); err != nil {
		t.Fatal(err)
	}
	b, err := NewBuilder(context.Background(), store, BuilderOptions{Container: "b"})
	if err != nil {
		t.Fatal(err)
	}
	o, err := OpenBuilder(store, "b")
	if err != nil || o.ContainerID() != b.ContainerID() {
		t.Errorf("opening b: %v (container %s, want %s)", err, o.ContainerID(), b.ContainerID())
	}
	if _, err := NewBuilder(context.Background(), store, BuilderOptions{Container: id}); err == nil {
		t.Errorf("a container named after another's ID was made")
	}
}
