package bricklayer

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/bricklayer/bricklayer/docker"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/manifest"
)

// TestPushKeepsBaseLayers pushes a base image to a registry from one store,
// builds on it in another store (pulling it from the registry), and pushes
// the result to another repository of the same registry. The base layer's
// descriptor must be the base image's as pushed (digest, size, annotations;
// the media type converted when the formats differ), and only the new layer
// and the config may be uploaded: the base layer is mounted from the base
// image's repository.
func TestPushKeepsBaseLayers(t *testing.T) {
	reg := startRegistry(t, t.TempDir())
	env := newTestEnv(t)
	sys := reg.sys(t, env.sys)

	for _, tc := range []struct {
		name     string
		baseType string
	}{
		{"oci", ""},
		{"docker", docker.V2S2MediaTypeManifest},
	} {
		// The base image, made and pushed from a store of its own.
		baseStore := newTestStore(t)
		a, err := NewBuilder(env.ctx, baseStore, BuilderOptions{FromImage: Scratch, Container: "base"})
		if err != nil {
			t.Fatal(err)
		}
		mp, err := a.Mount()
		if err != nil {
			t.Fatal(err)
		}
		fillTree(t, mp, 11)
		baseOpts := CommitOptions{ManifestType: tc.baseType, SystemContext: sys}
		if tc.baseType == "" {
			baseOpts.LayerAnnotations = map[string]string{"org.example.base": tc.name}
		}
		baseRef := reg.ref(t, "base-"+tc.name+":1")
		baseRes, err := a.Commit(env.ctx, baseRef, baseOpts)
		if err != nil {
			t.Fatalf("%s: pushing the base image: %v", tc.name, err)
		}
		if err := a.Unmount(); err != nil {
			t.Fatal(err)
		}
		baseImg := checkImageWith(t, baseRef, sys, wantImage{Layers: 1})
		checkResult(t, baseRes, baseImg)
		baseManifest, err := manifest.FromBlob(baseRes.Manifest, baseRes.ManifestType)
		if err != nil {
			t.Fatal(err)
		}
		baseLayer := baseManifest.LayerInfos()[0]

		// Built on in another store, from the registry.
		b, err := NewBuilder(env.ctx, env.store, BuilderOptions{FromImage: "docker://" + reg.addr + "/base-" + tc.name + ":1", SystemContext: sys, Container: "derived-" + tc.name})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b.mu.Lock()
		remembered := slices.Clone(b.state.BaseLayers)
		b.mu.Unlock()
		if len(remembered) != 1 || remembered[0].Descriptor.Digest != baseLayer.Digest || remembered[0].Descriptor.Size != baseLayer.Size || remembered[0].Descriptor.MediaType != baseLayer.MediaType {
			t.Errorf("%s: the builder remembers base layers %+v, want %+v", tc.name, remembered, baseLayer)
		}
		if mp, err = b.Mount(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mp, "added"), []byte("derived "+tc.name), 0o644); err != nil {
			t.Fatal(err)
		}

		blobsBefore := reg.blobs(t)
		requestsBefore := len(reg.requests(t))
		dest := reg.ref(t, "derived-"+tc.name+":1")
		res, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: sys})
		if err != nil {
			t.Fatalf("%s: pushing the derived image: %v", tc.name, err)
		}
		if err := b.Unmount(); err != nil {
			t.Fatal(err)
		}
		img := checkImageWith(t, dest, sys, wantImage{ManifestType: v1.MediaTypeImageManifest, Layers: 2})
		checkResult(t, res, img)
		m, err := manifest.OCI1FromManifest(res.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		got := m.Layers[0]
		if got.Digest != baseLayer.Digest || got.Size != baseLayer.Size || got.MediaType != v1.MediaTypeImageLayerGzip || !reflect.DeepEqual(got.Annotations, baseLayer.Annotations) {
			t.Errorf("%s: pushed base layer %+v, the base image's %+v", tc.name, got, baseLayer)
		}
		if img.Layers[0].DiffID != baseImg.Layers[0].DiffID {
			t.Errorf("%s: base layer diffID %s, the base image's %s", tc.name, img.Layers[0].DiffID, baseImg.Layers[0].DiffID)
		}

		// Only the new layer and the config reached the registry (and the
		// manifest, which the registry stores as a blob too).
		if n := reg.blobs(t) - blobsBefore; n != 3 {
			t.Errorf("%s: the push stored %d new blobs, want 3 (the new layer, the config and the manifest)", tc.name, n)
		}
		requests := reg.requests(t)[requestsBefore:]
		uploads := blobUploads(requests, "derived-"+tc.name)
		want := []string{m.Layers[1].Digest.String(), m.Config.Digest.String()}
		if !slices.Equal(slices.Sorted(slices.Values(uploads)), slices.Sorted(slices.Values(want))) {
			t.Errorf("%s: blobs uploaded %v, want the new layer and the config %v; requests:\n%v", tc.name, uploads, want, requests)
		}
	}
}

// TestPushExportsBaseStoredUncompressed pushes a container on a base image
// that the store holds uncompressed (as buildah and podman store what they
// build), so the base layer has no compressed blob of its own. The first
// push exports it compressed with the new layer; a push to another
// repository of the same registry does not export it again: the blob info
// cache knows the registry has it, and copy.Image mounts it. An
// uncompressed push leaves the base layer to copy.Image, as it does the new
// ones.
func TestPushExportsBaseStoredUncompressed(t *testing.T) {
	reg := startRegistry(t, t.TempDir())
	e := newLayoutReuseEnv(t)
	sys := reg.sys(t, e.sys)

	push := func(repo string, c Compression) (layers []string, baseExported bool, uploads []string) {
		t.Helper()
		e.mu.Lock()
		e.exported = nil
		e.mu.Unlock()
		ref := reg.ref(t, repo+":1")
		before := len(reg.requests(t))
		res, err := e.b.Commit(e.ctx, ref, CommitOptions{SystemContext: sys, Compression: c})
		if err != nil {
			t.Fatalf("%s: %v", repo, err)
		}
		checkResult(t, res, checkImageWith(t, ref, sys, wantImage{Layers: 2}))
		e.mu.Lock()
		defer e.mu.Unlock()
		return layerDigests(t, res.Manifest), slices.Contains(e.exported, e.base.LayerID), blobUploads(reg.requests(t)[before:], repo)
	}

	first, exported, uploads := push("first/img", CompressionGzip)
	if !exported {
		t.Errorf("first push: the base layer was not exported")
	}
	if first[0] == e.base.DiffID.String() || !slices.Contains(uploads, first[0]) {
		t.Errorf("first push: base layer %s (uploads %v), want a compressed blob uploaded", first[0], uploads)
	}
	second, exported, uploads := push("second/img", CompressionGzip)
	if exported {
		t.Errorf("second push: the base layer was exported again, though the registry has it")
	}
	if second[0] != first[0] || slices.Contains(uploads, second[0]) {
		t.Errorf("second push: base layer %s (uploads %v), want the first push's %s, not uploaded", second[0], uploads, first[0])
	}
	if _, exported, _ = push("plain/img", CompressionNone); exported {
		t.Errorf("uncompressed push: the base layer was exported")
	}
}
