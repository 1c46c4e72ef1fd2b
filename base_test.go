package bricklayer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/bricklayer/bricklayer/docker"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/signature"
)

// layerDigests returns the layer digests of a manifest.
func layerDigests(t *testing.T, manifestBytes []byte) []string {
	t.Helper()
	var m v1.Manifest
	if err := json.Unmarshal(manifestBytes, &m); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

// TestBaseLayersKept builds a 4-layer image, pulls it from its OCI layout
// and from a dir: directory into builders, and checks that commits keep the
// base's layer blobs: served from the origin while it holds them, and
// reproduced byte for byte from the store once one is missing or the
// origin is gone.
func TestBaseLayersKept(t *testing.T) {
	env := newTestEnv(t)
	baseLayout := env.dir(t, "base")
	baseDir := env.dir(t, "base-dir")

	// A 4-layer base: each step commits into the store and builds on it.
	from := Scratch
	var baseLayers []string
	for i := range 4 {
		b, err := NewBuilder(env.ctx, env.store, BuilderOptions{FromImage: from, Container: "step" + string(rune('a'+i))})
		if err != nil {
			t.Fatal(err)
		}
		mp, err := b.Mount()
		if err != nil {
			t.Fatal(err)
		}
		fillTree(t, filepath.Join(mp, "l"+string(rune('0'+i))), uint64(i+1))
		if i == 3 {
			res, err := b.Commit(env.ctx, ociRef(t, baseLayout, "base"), CommitOptions{SystemContext: env.sys})
			if err != nil {
				t.Fatal(err)
			}
			baseLayers = layerDigests(t, res.Manifest)
			res, err = b.Commit(env.ctx, parseRef(t, "dir:"+baseDir), CommitOptions{SystemContext: env.sys})
			if err != nil {
				t.Fatal(err)
			}
			if got := layerDigests(t, res.Manifest); !slices.Equal(got, baseLayers) {
				t.Fatalf("layers %v in dir:, %v in the layout", got, baseLayers)
			}
			if err := b.Unmount(); err != nil {
				t.Fatal(err)
			}
			break
		}
		name := "localhost/step:" + string(rune('0'+i))
		if _, err := b.Commit(env.ctx, storeRef(t, env.store, name), CommitOptions{SystemContext: env.sys}); err != nil {
			t.Fatal(err)
		}
		if err := b.Unmount(); err != nil {
			t.Fatal(err)
		}
		from = name
	}
	if len(baseLayers) != 4 {
		t.Fatalf("base has %d layers, want 4", len(baseLayers))
	}

	// The base is pulled with its origin recorded.
	for n, origin := range []struct{ ref, dir, blobs string }{
		{"oci:" + baseLayout + ":base", baseLayout, filepath.Join(baseLayout, "blobs", "sha256")},
		{"dir:" + baseDir, baseDir, baseDir},
	} {
		b, err := NewBuilder(env.ctx, env.store, BuilderOptions{FromImage: origin.ref, Container: "derived" + strconv.Itoa(n), SystemContext: env.sys})
		if err != nil {
			t.Fatal(err)
		}
		mp, err := b.Mount()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mp, "new"), []byte("new layer\n"), 0o644); err != nil {
			t.Fatal(err)
		}

		check := func(name string) {
			t.Helper()
			ref := ociRef(t, env.dir(t, name), "img")
			res, err := b.Commit(env.ctx, ref, CommitOptions{SystemContext: env.sys})
			if err != nil {
				t.Fatalf("%s, %s: %v", origin.ref, name, err)
			}
			got := layerDigests(t, res.Manifest)
			if len(got) != 5 {
				t.Fatalf("%s, %s: %d layers, want 5", origin.ref, name, len(got))
			}
			for i := range baseLayers {
				if got[i] != baseLayers[i] {
					t.Errorf("%s, %s: base layer %d is %s, want the base's %s", origin.ref, name, i, got[i], baseLayers[i])
				}
			}
			report, err := Verify(env.ctx, ref, env.sys)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range report.Problems {
				t.Errorf("%s, %s: verify: %s", origin.ref, name, p)
			}
		}
		check("with-origin")
		if err := os.Remove(filepath.Join(origin.blobs, digest.Digest(baseLayers[2]).Encoded())); err != nil {
			t.Fatal(err)
		}
		check("blob-missing")
		if err := os.RemoveAll(origin.dir); err != nil {
			t.Fatal(err)
		}
		check("without-origin")
		if err := b.Unmount(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCommitWithoutPolicyFile commits on a system with no signature policy
// file anywhere: the source is the caller's own container, so the commit
// goes ahead.
func TestCommitWithoutPolicyFile(t *testing.T) {
	env := newTestEnv(t)
	t.Setenv("HOME", env.dir(t, "home"))
	b, _ := env.newFilledBuilder(t, "work", 7)
	sys := *env.sys
	sys.RootForImplicitAbsolutePaths = env.dir(t, "emptyroot")
	if _, err := signature.DefaultPolicy(&sys); err == nil {
		t.Fatal("a policy file was found; the test needs a system without one")
	}
	if _, err := b.Commit(env.ctx, ociRef(t, env.dir(t, "oci"), "x"), CommitOptions{SystemContext: &sys}); err != nil {
		t.Fatalf("commit without a policy file: %v", err)
	}
}

// TestLayoutTakesBaseLayersInPlace commits a container on an uncompressed
// store image twice into one OCI layout, uncompressed. The first commit
// exports the base layer into the layout itself, beside the new one; the
// second finds the base's blob there and exports only the new layer. Both
// images read back whole, base layer unchanged.
func TestLayoutTakesBaseLayersInPlace(t *testing.T) {
	e := newLayoutReuseEnv(t)
	dir := e.dir(t, "layout")
	for i, tc := range []struct {
		tag      string
		wantBase bool
	}{
		{"first", true},
		{"second", false},
	} {
		e.mu.Lock()
		e.exported = nil
		e.mu.Unlock()
		ref := ociRef(t, dir, tc.tag)
		res, err := e.b.Commit(e.ctx, ref, CommitOptions{SystemContext: e.sys, Compression: CompressionNone})
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, res, checkImage(t, ref, wantImage{Layers: 2}))
		if got := layerDigests(t, res.Manifest); len(got) != 2 || got[0] != e.base.DiffID.String() {
			t.Errorf("%s: layers %v, want the base's %s first", tc.tag, got, e.base.DiffID)
		}
		e.mu.Lock()
		gotBase := slices.Contains(e.exported, e.base.LayerID)
		n := len(e.exported)
		e.mu.Unlock()
		if gotBase != tc.wantBase {
			t.Errorf("commit %d (%s): base layer exported: %v, want %v", i, tc.tag, gotBase, tc.wantBase)
		}
		if want := 1; !tc.wantBase && n != want {
			t.Errorf("commit %d (%s): %d layers exported, want %d", i, tc.tag, n, want)
		}
	}
}

// TestBaseFromDockerArchive builds on a base pulled from a docker-archive,
// whose containers/image source labels the archive's uncompressed layers
// gzip. The base layer is the uncompressed tar: served as such to an
// uncompressed commit, exported with the commit's compression otherwise, and
// never an uncompressed blob labelled compressed, with the archive there or
// not.
func TestBaseFromDockerArchive(t *testing.T) {
	env := newTestEnv(t)
	archive := filepath.Join(env.dir(t, "archive"), "base.tar")
	if err := os.MkdirAll(filepath.Dir(archive), 0o755); err != nil {
		t.Fatal(err)
	}
	base, _ := env.newFilledBuilder(t, "base", 61)
	if _, err := base.Commit(env.ctx, parseRef(t, "docker-archive:"+archive+":base/img:1"), CommitOptions{SystemContext: env.sys}); err != nil {
		t.Fatal(err)
	}
	b, mp := env.newMountedBuilder(t, "docker-archive:"+archive, "derived")
	if err := os.WriteFile(filepath.Join(mp, "new"), []byte("new layer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []bool{false, true} {
		if gone {
			if err := os.Remove(archive); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []Compression{CompressionNone, CompressionGzip, CompressionZstd} {
			for _, dest := range []string{"oci:" + env.dir(t, "oci") + ":x", "dir:" + env.dir(t, "dir"), "dir-docker"} {
				mtype := v1.MediaTypeImageManifest
				if dest == "dir-docker" {
					if c == CompressionZstd {
						continue
					}
					mtype, dest = docker.V2S2MediaTypeManifest, "dir:"+env.dir(t, "dir")
				}
				ref := parseRef(t, dest)
				if _, err := b.Commit(env.ctx, ref, CommitOptions{SystemContext: env.sys, Compression: c, ManifestType: mtype}); err != nil {
					t.Fatalf("archive gone %v, %s, %s: %v", gone, c, dest, err)
				}
				t.Logf("archive gone %v, %s, %s, %s", gone, c, ref.Transport().Name(), mtype)
				checkImage(t, ref, wantImage{Layers: 2, ManifestType: mtype, LayerMediaType: layerMediaType(mtype, c)})
			}
		}
	}
}
