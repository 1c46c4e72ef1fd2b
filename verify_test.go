package bricklayer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bricklayer/bricklayer/docker"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/directory"
)

// ociLayout edits an OCI layout on disk the way a corrupted or tampered
// copy would look.
type ociLayout struct {
	t   *testing.T
	dir string
}

func (l ociLayout) blobPath(d digest.Digest) string {
	return filepath.Join(l.dir, "blobs", d.Algorithm().String(), d.Encoded())
}

func (l ociLayout) readJSON(path string, v any) {
	l.t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		l.t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		l.t.Fatal(err)
	}
}

// writeBlob stores v as a JSON blob and returns its descriptor.
func (l ociLayout) writeBlob(mediaType string, v any) v1.Descriptor {
	l.t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		l.t.Fatal(err)
	}
	d := digest.FromBytes(data)
	if err := os.WriteFile(l.blobPath(d), data, 0o644); err != nil {
		l.t.Fatal(err)
	}
	return v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

// index reads index.json, and the descriptor tagged tag in it.
func (l ociLayout) index(tag string) (v1.Index, int) {
	l.t.Helper()
	var idx v1.Index
	l.readJSON(filepath.Join(l.dir, "index.json"), &idx)
	for i, m := range idx.Manifests {
		if m.Annotations[v1.AnnotationRefName] == tag {
			return idx, i
		}
	}
	l.t.Fatalf("no %s in %s", tag, l.dir)
	return idx, -1
}

// setIndexEntry points tag at desc in index.json, adding it if needed.
func (l ociLayout) setIndexEntry(tag string, desc v1.Descriptor) {
	l.t.Helper()
	var idx v1.Index
	l.readJSON(filepath.Join(l.dir, "index.json"), &idx)
	desc.Annotations = map[string]string{v1.AnnotationRefName: tag}
	found := false
	for i, m := range idx.Manifests {
		if m.Annotations[v1.AnnotationRefName] == tag {
			idx.Manifests[i], found = desc, true
		}
	}
	if !found {
		idx.Manifests = append(idx.Manifests, desc)
	}
	data, err := json.Marshal(idx)
	if err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.dir, "index.json"), data, 0o644); err != nil {
		l.t.Fatal(err)
	}
}

// manifest reads the manifest tagged tag.
func (l ociLayout) manifest(tag string) (v1.Manifest, v1.Descriptor) {
	l.t.Helper()
	idx, i := l.index(tag)
	var m v1.Manifest
	l.readJSON(l.blobPath(idx.Manifests[i].Digest), &m)
	return m, idx.Manifests[i]
}

// editManifest rewrites tag's manifest with edit; with fixIndex the index
// points at the new manifest, else the new bytes replace the old file.
func (l ociLayout) editManifest(tag string, fixIndex bool, edit func(*v1.Manifest)) {
	l.t.Helper()
	m, old := l.manifest(tag)
	edit(&m)
	if !fixIndex {
		data, err := json.Marshal(m)
		if err != nil {
			l.t.Fatal(err)
		}
		if err := os.WriteFile(l.blobPath(old.Digest), data, 0o644); err != nil {
			l.t.Fatal(err)
		}
		return
	}
	l.setIndexEntry(tag, l.writeBlob(v1.MediaTypeImageManifest, m))
}

// editConfig rewrites tag's config with edit, and the manifest and index to
// match, so that every digest is right again.
func (l ociLayout) editConfig(tag string, edit func(*v1.Image)) {
	l.t.Helper()
	m, _ := l.manifest(tag)
	var c v1.Image
	l.readJSON(l.blobPath(m.Config.Digest), &c)
	edit(&c)
	desc := l.writeBlob(v1.MediaTypeImageConfig, c)
	l.editManifest(tag, true, func(m *v1.Manifest) { m.Config = desc })
}

// flipByte inverts the byte at offset (counted from the end when negative)
// of the file at path.
func flipByte(t *testing.T, path string, offset int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if offset < 0 {
		offset += len(data)
	}
	data[offset] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// copyDir copies a directory of regular files.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// hasProblem reports whether problems hold one about object and check,
// matching digest, want and got when they are not "".
func hasProblem(problems []VerifyProblem, object, check string, d digest.Digest, want, got string) bool {
	for _, p := range problems {
		if p.Object == object && p.Check == check && (d == "" || p.Digest == d) && (want == "" || p.Want == want) && (got == "" || p.Got == got) {
			return true
		}
	}
	return false
}

func TestVerify(t *testing.T) {
	env := newTestEnv(t)
	b, _ := env.newFilledBuilder(t, "work", 5)
	// One good layout per compression, copied for each corruption.
	good := map[Compression]string{}
	for _, c := range []Compression{CompressionGzip, CompressionNone, CompressionZstd} {
		good[c] = env.dir(t, "good-"+c.String())
		if _, err := b.Commit(env.ctx, ociRef(t, good[c], "latest"), CommitOptions{Compression: c, SystemContext: env.sys}); err != nil {
			t.Fatal(err)
		}
	}

	// A digest that names nothing in the image.
	bogus := digest.FromString("bogus")
	// layerCorrupted checks that a layer whose bytes changed is reported.
	layerCorrupted := func(t *testing.T, l ociLayout, problems []VerifyProblem) {
		m, _ := l.manifest("latest")
		d := m.Layers[0].Digest
		if !hasProblem(problems, "layer 0", "digest", d, d.String(), "") {
			t.Errorf("layer digest mismatch not reported")
		}
		if !hasProblem(problems, "layer 0", "diffID", d, "", "") && !hasProblem(problems, "layer 0", "decompression", d, "", "") {
			t.Errorf("corrupt content not reported as a diffID or decompression problem")
		}
	}

	for _, tc := range []struct {
		name        string
		compression Compression
		corrupt     func(l ociLayout)
		// check inspects the problems; the image must have some unless
		// it is nil.
		check func(t *testing.T, l ociLayout, problems []VerifyProblem)
	}{
		{"good/gzip", CompressionGzip, nil, nil},
		{"good/none", CompressionNone, nil, nil},
		{"good/zstd", CompressionZstd, nil, nil},
		{
			"layer-byte-flipped/none", CompressionNone,
			func(l ociLayout) {
				m, _ := l.manifest("latest")
				flipByte(l.t, l.blobPath(m.Layers[0].Digest), 1000)
			},
			func(t *testing.T, l ociLayout, problems []VerifyProblem) {
				m, _ := l.manifest("latest")
				d := m.Layers[0].Digest
				if !hasProblem(problems, "layer 0", "digest", d, d.String(), "") {
					t.Errorf("layer digest mismatch not reported")
				}
				if !hasProblem(problems, "layer 0", "diffID", d, d.String(), "") {
					t.Errorf("diffID mismatch not reported")
				}
				if hasProblem(problems, "layer 0", "size", "", "", "") || hasProblem(problems, "config", "", "", "", "") {
					t.Errorf("problems reported that are not there")
				}
			},
		},
		{
			"layer-byte-flipped/gzip", CompressionGzip,
			func(l ociLayout) {
				m, _ := l.manifest("latest")
				flipByte(l.t, l.blobPath(m.Layers[0].Digest), 5000)
			},
			layerCorrupted,
		},
		{
			"layer-byte-flipped/zstd", CompressionZstd,
			func(l ociLayout) {
				m, _ := l.manifest("latest")
				flipByte(l.t, l.blobPath(m.Layers[0].Digest), -100)
			},
			layerCorrupted,
		},
		{
			"layer-truncated", CompressionGzip,
			func(l ociLayout) {
				m, _ := l.manifest("latest")
				p := l.blobPath(m.Layers[0].Digest)
				if err := os.Truncate(p, m.Layers[0].Size-10); err != nil {
					l.t.Fatal(err)
				}
			},
			func(t *testing.T, l ociLayout, problems []VerifyProblem) {
				m, _ := l.manifest("latest")
				d := m.Layers[0].Digest
				if !hasProblem(problems, "layer 0", "size", d, fmt.Sprint(m.Layers[0].Size), fmt.Sprint(m.Layers[0].Size-10)) {
					t.Errorf("size mismatch not reported")
				}
				if !hasProblem(problems, "layer 0", "decompression", d, "", "") {
					t.Errorf("truncated gzip stream not reported")
				}
			},
		},
		{
			"config-byte-flipped", CompressionGzip,
			func(l ociLayout) {
				m, _ := l.manifest("latest")
				p := l.blobPath(m.Config.Digest)
				data, err := os.ReadFile(p)
				if err != nil {
					l.t.Fatal(err)
				}
				i := strings.Index(string(data), `"os":"`)
				if i < 0 {
					l.t.Fatalf("no os in config %s", data)
				}
				flipByte(l.t, p, i+len(`"os":"`)) // still valid JSON
			},
			func(t *testing.T, l ociLayout, problems []VerifyProblem) {
				m, _ := l.manifest("latest")
				if !hasProblem(problems, "config", "digest", m.Config.Digest, m.Config.Digest.String(), "") {
					t.Errorf("config digest mismatch not reported")
				}
			},
		},
		{
			"config-diffID-edited", CompressionGzip,
			func(l ociLayout) {
				l.editConfig("latest", func(c *v1.Image) { c.RootFS.DiffIDs[0] = bogus })
			},
			func(t *testing.T, l ociLayout, problems []VerifyProblem) {
				m, _ := l.manifest("latest")
				if len(problems) != 1 || !hasProblem(problems, "layer 0", "diffID", m.Layers[0].Digest, bogus.String(), "") {
					t.Errorf("want only the diffID mismatch")
				}
			},
		},
		{
			"config-diffID-added", CompressionGzip,
			func(l ociLayout) {
				l.editConfig("latest", func(c *v1.Image) { c.RootFS.DiffIDs = append(c.RootFS.DiffIDs, bogus) })
			},
			func(t *testing.T, l ociLayout, problems []VerifyProblem) {
				if len(problems) != 1 || !hasProblem(problems, "image", "diff_ids count", "", "", "2") {
					t.Errorf("want only the diff_ids count mismatch")
				}
			},
		},
		{
			"history-entry-added", CompressionGzip,
			func(l ociLayout) {
				l.editConfig("latest", func(c *v1.Image) {
					c.History = append(c.History, v1.History{CreatedBy: "extra"}, v1.History{CreatedBy: "empty", EmptyLayer: true})
				})
			},
			func(t *testing.T, l ociLayout, problems []VerifyProblem) {
				if len(problems) != 1 || !hasProblem(problems, "image", "history count", "", "", "2") {
					t.Errorf("want only the history count mismatch")
				}
			},
		},
		{
			"manifest-edited-index-not", CompressionGzip,
			func(l ociLayout) {
				l.editManifest("latest", false, func(m *v1.Manifest) { m.Config.Size++ })
			},
			func(t *testing.T, l ociLayout, problems []VerifyProblem) {
				_, desc := l.manifest("latest")
				m, _ := l.manifest("latest")
				if !hasProblem(problems, "manifest", "digest", desc.Digest, desc.Digest.String(), "") {
					t.Errorf("manifest digest mismatch not reported")
				}
				if !hasProblem(problems, "config", "size", m.Config.Digest, fmt.Sprint(m.Config.Size), fmt.Sprint(m.Config.Size-1)) {
					t.Errorf("config size mismatch not reported")
				}
			},
		},
		{
			"media-type-says-zstd", CompressionGzip,
			func(l ociLayout) {
				l.editManifest("latest", true, func(m *v1.Manifest) { m.Layers[0].MediaType = v1.MediaTypeImageLayerZstd })
			},
			func(t *testing.T, l ociLayout, problems []VerifyProblem) {
				if len(problems) != 1 || !hasProblem(problems, "layer 0", "compression", "", "", "gzip") {
					t.Errorf("want only the compression mismatch")
				}
			},
		},
		{
			"config-media-type", CompressionGzip,
			func(l ociLayout) {
				l.editManifest("latest", true, func(m *v1.Manifest) { m.Config.MediaType = docker.V2S2MediaTypeImageConfig })
			},
			func(t *testing.T, l ociLayout, problems []VerifyProblem) {
				if len(problems) != 1 || !hasProblem(problems, "config", "media type", "", v1.MediaTypeImageConfig, docker.V2S2MediaTypeImageConfig) {
					t.Errorf("want only the config media type mismatch")
				}
			},
		},
		{
			// The manifest calls itself Docker v2s2; the index, OCI.
			"manifest-own-media-type", CompressionGzip,
			func(l ociLayout) {
				l.editManifest("latest", true, func(m *v1.Manifest) { m.MediaType = docker.V2S2MediaTypeManifest })
			},
			func(t *testing.T, l ociLayout, problems []VerifyProblem) {
				if len(problems) != 1 || !hasProblem(problems, "manifest", "media type", "", v1.MediaTypeImageManifest+" (as referred to)", docker.V2S2MediaTypeManifest) {
					t.Errorf("want only the manifest's media type mismatch")
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := env.dir(t, "oci")
			copyDir(t, good[tc.compression], dir)
			l := ociLayout{t: t, dir: dir}
			if tc.corrupt != nil {
				tc.corrupt(l)
			}
			report, err := Verify(env.ctx, ociRef(t, dir, "latest"), env.sys)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range report.Problems {
				t.Logf("problem: %s", p)
			}
			if report.Images != 1 || report.Blobs != 2 {
				t.Errorf("checked %d images and %d blobs, want 1 and 2", report.Images, report.Blobs)
			}
			if tc.check == nil {
				if !report.OK() {
					t.Errorf("problems in a good image")
				}
				return
			}
			if report.OK() {
				t.Fatalf("no problem found")
			}
			tc.check(t, l, report.Problems)
		})
	}

	t.Run("missing-blobs", func(t *testing.T) {
		// A missing blob is a problem of the image, reported with the
		// others, not an error that stops the check.
		for _, object := range []string{"layer 0", "config"} {
			dir := env.dir(t, "oci")
			copyDir(t, good[CompressionGzip], dir)
			l := ociLayout{t: t, dir: dir}
			m, _ := l.manifest("latest")
			d := m.Layers[0].Digest
			if object == "config" {
				d = m.Config.Digest
			}
			if err := os.Remove(l.blobPath(d)); err != nil {
				t.Fatal(err)
			}
			report, err := Verify(env.ctx, ociRef(t, dir, "latest"), env.sys)
			if err != nil || len(report.Problems) != 1 || !hasProblem(report.Problems, object, "presence", d, "", "") {
				t.Errorf("%s missing: %v, problems %v; want the missing blob reported alone", object, err, report.Problems)
			}
			if report.Blobs != 1 {
				t.Errorf("%s missing: %d blobs read, want the other one", object, report.Blobs)
			}
		}
	})

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(env.ctx)
		cancel()
		if _, err := Verify(ctx, ociRef(t, good[CompressionGzip], "latest"), env.sys); !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	})

	t.Run("index", func(t *testing.T) {
		// An index of two images, the second with a corrupt layer: each
		// instance is verified and the problem names its instance.
		dir := env.dir(t, "oci")
		copyDir(t, good[CompressionGzip], dir)
		if _, err := b.Commit(env.ctx, ociRef(t, dir, "none"), CommitOptions{Compression: CompressionNone, SystemContext: env.sys}); err != nil {
			t.Fatal(err)
		}
		l := ociLayout{t: t, dir: dir}
		_, gzipDesc := l.manifest("latest")
		noneManifest, noneDesc := l.manifest("none")
		gzipDesc.Annotations, noneDesc.Annotations = nil, nil
		list := v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{gzipDesc, noneDesc}}
		l.setIndexEntry("list", l.writeBlob(v1.MediaTypeImageIndex, list))

		report, err := Verify(env.ctx, ociRef(t, dir, "list"), env.sys)
		if err != nil {
			t.Fatal(err)
		}
		if !report.OK() || report.Images != 2 || report.Blobs != 4 || report.ManifestType != v1.MediaTypeImageIndex {
			t.Errorf("good index: %+v", report)
		}
		flipByte(t, l.blobPath(noneManifest.Layers[0].Digest), 700)
		report, err = Verify(env.ctx, ociRef(t, dir, "list"), env.sys)
		if err != nil {
			t.Fatal(err)
		}
		if len(report.Problems) != 2 {
			t.Errorf("problems %v, want a digest and a diffID mismatch", report.Problems)
		}
		for _, p := range report.Problems {
			if p.Instance != noneDesc.Digest || p.Object != "layer 0" || !strings.Contains(p.String(), noneDesc.Digest.String()) {
				t.Errorf("problem %s is not about layer 0 of instance %s", p, noneDesc.Digest)
			}
		}
	})

	t.Run("other-sources", func(t *testing.T) {
		// The working container itself, and a dir: copy.
		ref, err := b.ImageRef(CommitOptions{Compression: CompressionZstd})
		if err != nil {
			t.Fatal(err)
		}
		if report, err := Verify(env.ctx, ref, env.sys); err != nil || !report.OK() || report.Blobs != 2 {
			t.Errorf("verifying the working container: %+v, %v", report, err)
		}
		dirRef, err := directory.NewReference(env.dir(t, "dir"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Commit(env.ctx, dirRef, CommitOptions{ManifestType: docker.V2S2MediaTypeManifest, SystemContext: env.sys}); err != nil {
			t.Fatal(err)
		}
		if report, err := Verify(env.ctx, dirRef, env.sys); err != nil || !report.OK() || report.Blobs != 2 {
			t.Errorf("verifying a dir: copy: %+v, %v", report, err)
		}
	})
}

// TestVerifyRegistryMissingBlob: a blob a registry no longer serves is a
// problem of the image, as one missing from a layout is.
func TestVerifyRegistryMissingBlob(t *testing.T) {
	env := newTestEnv(t)
	reg := startRegistry(t, env.dir(t, "registry"))
	sys := reg.sys(t, env.sys)
	b, _ := env.newFilledBuilder(t, "work", 62)
	ref := reg.ref(t, "v/img:1")
	res, err := b.Commit(env.ctx, ref, CommitOptions{SystemContext: sys})
	if err != nil {
		t.Fatal(err)
	}
	m := layerDigests(t, res.Manifest)
	d := m[0][len("sha256:"):]
	blob := filepath.Join(reg.dir, "docker", "registry", "v2", "blobs", "sha256", d[:2], d)
	if err := os.RemoveAll(blob); err != nil {
		t.Fatal(err)
	}
	report, err := Verify(env.ctx, ref, sys)
	t.Logf("report %+v err %v", report, err)
	if err != nil || !hasProblem(report.Problems, "layer 0", "presence", "", "", "") {
		t.Errorf("verify of an image whose layer the registry lost: %v, problems %v; want a presence problem", err, report.Problems)
	}
}
