package interop

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/bricklayer/bricklayer"
	"github.com/bricklayer/bricklayer/docker"
	"github.com/bricklayer/bricklayer/internal/testutil"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/schema"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// expect is what a committed image must be.
type expect struct {
	format
	// result is what Commit returned.
	result bricklayer.CommitResult
	// rootfs is the working container's mounted root filesystem, which the
	// unpacked image must equal.
	rootfs string
	// layers is the number of layers.
	layers int
	// baseDigests are the blobs the first layers must keep (those of a base
	// image made by another tool); nil when nothing is required.
	baseDigests []digest.Digest
}

// manifestDoc is the part of an OCI or Docker v2s2 manifest the checks read.
type manifestDoc struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        v1.Descriptor   `json:"config"`
	Layers        []v1.Descriptor `json:"layers"`
}

// configDoc is the part of an OCI or Docker config the checks read.
type configDoc struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	RootFS       struct {
		Type    string          `json:"type"`
		DiffIDs []digest.Digest `json:"diff_ids"`
	} `json:"rootfs"`
	History []struct {
		EmptyLayer bool `json:"empty_layer"`
	} `json:"history"`
}

// checkImage reads the image at tg with the outside tools and checks it
// against want: skopeo inspect (manifest and config), every blob's digest
// and size recomputed from a skopeo copy and from the files written, the
// image-spec schemas, crane validate where crane can read it, and a umoci
// unpack compared with the container's rootfs. It returns the config blob.
func checkImage(t *testing.T, e *env, tg target, want expect) (config []byte) {
	t.Helper()
	tls := []string{}
	if tg.transport == tRegistry {
		tls = []string{"--tls-verify=false"}
	}
	wantType := writtenManifestType(tg.transport, want.manifestType)

	// The manifest as skopeo reads it.
	raw := e.skopeoRun(t, append(append([]string{"inspect", "--raw"}, tls...), tg.name)...)
	if tg.transport != tDocArchive && !bytes.Equal(raw, want.result.Manifest) {
		t.Errorf("%s: skopeo reads manifest %s, commit wrote %s", tg.name, digest.FromBytes(raw), want.result.ManifestDigest)
	}
	if want.result.ManifestDigest != digest.FromBytes(want.result.Manifest) {
		t.Errorf("commit result: manifest digest %s, manifest hashes to %s", want.result.ManifestDigest, digest.FromBytes(want.result.Manifest))
	}
	m := parseManifest(t, tg.name, raw)
	checkManifest(t, tg, want, wantType, m, raw)

	// The config as skopeo reads it.
	cfgRaw := e.skopeoRun(t, append(append([]string{"inspect", "--config", "--raw"}, tls...), tg.name)...)
	if d := digest.FromBytes(cfgRaw); d != m.Config.Digest || int64(len(cfgRaw)) != m.Config.Size {
		t.Errorf("%s: config is %s (%d bytes), manifest says %s (%d bytes)", tg.name, d, len(cfgRaw), m.Config.Digest, m.Config.Size)
	}
	if written := parseManifest(t, "commit result", want.result.Manifest); written.Config.Digest != m.Config.Digest {
		t.Errorf("%s: skopeo reads config %s, the commit wrote %s", tg.name, m.Config.Digest, written.Config.Digest)
	}
	cfg := parseConfig(t, tg.name, cfgRaw, want.layers)
	if wantType == v1.MediaTypeImageManifest {
		validateSchema(t, tg.name+" config", schema.ValidatorMediaTypeImageConfig, cfgRaw)
	}

	// Every blob, as skopeo copies it out.
	copied := filepath.Join(t.TempDir(), "copy")
	args := append([]string{"copy", "--quiet"}, srcTLS(tg)...)
	if tg.transport == tStorage || tg.transport == tDocArchive {
		// Both sources serve layers uncompressed under the manifest's
		// compressed media type, and skopeo 1.9.3 keeps that media type in
		// a dir: copy; compressing makes it true again.
		args = append(args, "--dest-compress")
	}
	e.skopeoRun(t, append(args, tg.name, "dir:"+copied)...)
	checkDirCopy(t, tg.name+" (skopeo copy to dir:)", copied, cfg, cfgRaw)

	// The files we wrote, read directly.
	switch tg.transport {
	case tOCI:
		checkLayout(t, tg.path, tg.tag, want.result)
	case tOCIArchive:
		dir := t.TempDir()
		extractTar(t, tg.path, dir)
		checkLayout(t, dir, tg.tag, want.result)
	case tDir:
		checkDirCopy(t, tg.name, tg.path, cfg, cfgRaw)
		if got, err := os.ReadFile(filepath.Join(tg.path, "manifest.json")); err != nil || !bytes.Equal(got, want.result.Manifest) {
			t.Errorf("%s: manifest.json differs from the manifest the commit returned (%v)", tg.name, err)
		}
	case tDocArchive:
		checkDockerArchive(t, tg, cfg, cfgRaw)
		testutil.Run(t, e.toolEnv, e.crane, "validate", "--tarball", tg.path)
	case tStorage:
		checkStorage(t, e, tg, want.result)
	case tRegistry:
		if c, _ := writtenCompression(tg.transport, want.compression); c == bricklayer.CompressionGzip {
			testutil.Run(t, e.toolEnv, e.crane, "validate", "--insecure", "--remote", tg.remote)
		}
	}

	// Unpacked by umoci, which reads OCI layouts with gzip or no compression.
	layout, tag := tg.path, tg.tag
	if tg.transport != tOCI || want.compression == bricklayer.CompressionZstd {
		layout, tag = filepath.Join(t.TempDir(), "layout"), "unpack"
		args := append([]string{"copy", "--quiet"}, srcTLS(tg)...)
		if want.compression == bricklayer.CompressionZstd {
			args = append(args, "--dest-compress-format", "gzip")
		}
		e.skopeoRun(t, append(args, tg.name, "oci:"+layout+":"+tag)...)
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	testutil.Run(t, e.toolEnv, e.umoci, "unpack", "--image", layout+":"+tag, bundle)
	if n := testutil.CompareTrees(t, want.rootfs, filepath.Join(bundle, "rootfs")); n > 0 {
		t.Errorf("%s: the tree umoci unpacked differs from the container's in %d places", tg.name, n)
	}
	return cfgRaw
}

// srcTLS turns TLS off for skopeo copy from the test registry.
func srcTLS(tg target) []string {
	if tg.transport == tRegistry {
		return []string{"--src-tls-verify=false"}
	}
	return nil
}

func parseManifest(t *testing.T, name string, raw []byte) manifestDoc {
	t.Helper()
	var m manifestDoc
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: parsing manifest: %v\n%s", name, err, raw)
	}
	return m
}

// checkManifest checks the manifest's type, config descriptor, layer count
// and layer media types, and validates an OCI manifest against its schema.
func checkManifest(t *testing.T, tg target, want expect, wantType string, m manifestDoc, raw []byte) {
	t.Helper()
	if m.SchemaVersion != 2 || m.MediaType != wantType {
		t.Errorf("%s: manifest schemaVersion %d mediaType %q, want 2 and %q", tg.name, m.SchemaVersion, m.MediaType, wantType)
	}
	wantConfigType := v1.MediaTypeImageConfig
	if wantType == docker.V2S2MediaTypeManifest {
		wantConfigType = docker.V2S2MediaTypeImageConfig
	}
	if m.Config.MediaType != wantConfigType {
		t.Errorf("%s: config media type %q, want %q", tg.name, m.Config.MediaType, wantConfigType)
	}
	if len(m.Layers) != want.layers {
		t.Fatalf("%s: %d layers, want %d:\n%s", tg.name, len(m.Layers), want.layers, raw)
	}
	if wantType == v1.MediaTypeImageManifest {
		validateSchema(t, tg.name+" manifest", schema.ValidatorMediaTypeManifest, raw)
	}
	for i, l := range m.Layers {
		if i < len(want.baseDigests) && tg.transport != tDocArchive {
			if l.Digest != want.baseDigests[i] {
				t.Errorf("%s: base layer %d is %s, the base image has %s", tg.name, i, l.Digest, want.baseDigests[i])
			}
			continue
		}
		c, ok := writtenCompression(tg.transport, want.compression)
		if !ok {
			continue
		}
		if wantMT := layerMediaType(wantType, c); l.MediaType != wantMT {
			t.Errorf("%s: layer %d (%s) has media type %q, want %q", tg.name, i, l.Digest, l.MediaType, wantMT)
		}
	}
}

// writtenManifestType is the manifest type a transport ends up with when
// asked for mtype: an OCI layout holds OCI manifests only and a
// docker-archive Docker ones only, so copy.Image converts.
func writtenManifestType(transport, mtype string) string {
	switch transport {
	case tOCI, tOCIArchive:
		return v1.MediaTypeImageManifest
	case tDocArchive:
		return docker.V2S2MediaTypeManifest
	}
	return mtype
}

// writtenCompression is the compression a layer written to transport must
// have when the commit asked for c; false when nothing is required:
//   - local destinations and registries get every layer the commit writes
//     in c, base layers included when their original blobs cannot be
//     served;
//   - a registry compresses what it is given uncompressed, with gzip:
//     "none" becomes gzip;
//   - containers-storage keeps layers uncompressed; the manifest it records
//     names the blob it was given or the uncompressed diff (a commit into
//     the builder's own store writes the new layer there uncompressed);
//   - docker-archive holds layers uncompressed, and its reader says gzip;
//     checkDockerArchive checks them.
func writtenCompression(transport string, c bricklayer.Compression) (bricklayer.Compression, bool) {
	switch transport {
	case tStorage, tDocArchive:
		return c, false
	case tRegistry:
		if c == bricklayer.CompressionNone {
			return bricklayer.CompressionGzip, true
		}
	}
	return c, true
}

func parseConfig(t *testing.T, name string, raw []byte, layers int) configDoc {
	t.Helper()
	var c configDoc
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("%s: parsing config: %v\n%s", name, err, raw)
	}
	if c.OS != runtime.GOOS || c.Architecture != runtime.GOARCH {
		t.Errorf("%s: config says %s/%s, want %s/%s", name, c.OS, c.Architecture, runtime.GOOS, runtime.GOARCH)
	}
	if c.RootFS.Type != "layers" || len(c.RootFS.DiffIDs) != layers {
		t.Errorf("%s: config rootfs type %q with %d diff_ids, want \"layers\" and %d", name, c.RootFS.Type, len(c.RootFS.DiffIDs), layers)
	}
	nonEmpty := 0
	for _, h := range c.History {
		if !h.EmptyLayer {
			nonEmpty++
		}
	}
	if nonEmpty != len(c.RootFS.DiffIDs) {
		t.Errorf("%s: config history has %d entries with a layer for %d diff_ids", name, nonEmpty, len(c.RootFS.DiffIDs))
	}
	return c
}

// validateSchema validates doc against the image-spec schema of kind.
func validateSchema(t *testing.T, what string, kind schema.Validator, doc []byte) {
	t.Helper()
	if err := kind.Validate(bytes.NewReader(doc)); err != nil {
		t.Errorf("%s does not validate against the %s schema: %v\n%s", what, string(kind), err, doc)
	}
}

// checkDirCopy checks a dir: image: its manifest.json, config and every
// layer blob, each file named by its digest's hex.
func checkDirCopy(t *testing.T, what, dir string, cfg configDoc, cfgRaw []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	m := parseManifest(t, what, raw)
	blobPath := func(d digest.Digest) string { return filepath.Join(dir, d.Encoded()) }
	if got, err := os.ReadFile(blobPath(m.Config.Digest)); err != nil || !bytes.Equal(got, cfgRaw) {
		t.Errorf("%s: config blob %s differs from the config skopeo inspect read (%v)", what, m.Config.Digest, err)
	}
	checkLayers(t, what, m, cfg, blobPath)
}

// checkLayers recomputes each layer's digest, size and diffID from the file
// blobPath gives for it, and checks that its compression is the one its
// media type names and that it is a whole tar stream.
func checkLayers(t *testing.T, what string, m manifestDoc, cfg configDoc, blobPath func(digest.Digest) string) {
	t.Helper()
	if len(m.Layers) != len(cfg.RootFS.DiffIDs) {
		t.Errorf("%s: %d layers for %d diff_ids", what, len(m.Layers), len(cfg.RootFS.DiffIDs))
		return
	}
	for i, l := range m.Layers {
		if err := checkLayerBlob(blobPath(l.Digest), l, cfg.RootFS.DiffIDs[i]); err != nil {
			t.Errorf("%s: layer %d: %v", what, i, err)
		}
	}
}

// checkLayerBlob checks one layer blob file against its descriptor and its
// diffID.
func checkLayerBlob(path string, desc v1.Descriptor, diffID digest.Digest) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	defer f.Close()
	blobDigester := digest.Canonical.Digester()
	counter := &countWriter{}
	br := bufio.NewReader(io.TeeReader(f, io.MultiWriter(blobDigester.Hash(), counter)))
	magic, _ := br.Peek(4)
	var got string
	var tarStream io.Reader
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		got = "gzip"
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("blob %s: %w", desc.Digest, err)
		}
		tarStream = zr
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		got = "zstd"
		zr, err := zstd.NewReader(br)
		if err != nil {
			return fmt.Errorf("blob %s: %w", desc.Digest, err)
		}
		defer zr.Close()
		tarStream = zr
	default:
		got = "none"
		tarStream = br
	}
	want := "none"
	switch {
	case strings.HasSuffix(desc.MediaType, "+zstd"):
		want = "zstd"
	case strings.HasSuffix(desc.MediaType, "gzip"):
		want = "gzip"
	}
	if got != want {
		return fmt.Errorf("blob %s: media type %s but %s content", desc.Digest, desc.MediaType, got)
	}
	diffDigester := digest.Canonical.Digester()
	tr := tar.NewReader(io.TeeReader(tarStream, diffDigester.Hash()))
	entries := 0
	for {
		_, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("blob %s: reading its tar stream: %w", desc.Digest, err)
		}
		entries++
	}
	// The tar reader stops at the end-of-archive marker; the diffID covers
	// everything after it too.
	if _, err := io.Copy(diffDigester.Hash(), tarStream); err != nil {
		return fmt.Errorf("blob %s: decompressing: %w", desc.Digest, err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if blobDigester.Digest() != desc.Digest || counter.n != desc.Size {
		return fmt.Errorf("blob %s (%d bytes in the manifest) hashes to %s (%d bytes)", desc.Digest, desc.Size, blobDigester.Digest(), counter.n)
	}
	if diffDigester.Digest() != diffID {
		return fmt.Errorf("blob %s: uncompressed it hashes to %s, the config's diff_id is %s", desc.Digest, diffDigester.Digest(), diffID)
	}
	if entries == 0 {
		return fmt.Errorf("blob %s: an empty tar stream", desc.Digest)
	}
	return nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// checkLayout checks an OCI layout we wrote: the oci-layout file and
// index.json against their schemas, every blob in it against its name, the
// index entry of tag against the manifest the commit returned, and the
// manifest's config and layers.
func checkLayout(t *testing.T, dir, tag string, res bricklayer.CommitResult) {
	t.Helper()
	layoutFile, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	if err != nil {
		t.Fatal(err)
	}
	validateSchema(t, dir+"/oci-layout", schema.ValidatorMediaTypeLayoutHeader, layoutFile)
	indexRaw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	validateSchema(t, dir+"/index.json", schema.ValidatorMediaTypeImageIndex, indexRaw)
	var index v1.Index
	if err := json.Unmarshal(indexRaw, &index); err != nil {
		t.Fatalf("parsing %s/index.json: %v", dir, err)
	}
	found := false
	for _, d := range index.Manifests {
		if d.Annotations[v1.AnnotationRefName] != tag {
			continue
		}
		found = true
		if d.Digest != res.ManifestDigest || d.Size != int64(len(res.Manifest)) || d.MediaType != res.ManifestType {
			t.Errorf("%s: index entry %q is %s %s (%d bytes), commit wrote %s %s (%d bytes)", dir, tag, d.MediaType, d.Digest, d.Size, res.ManifestType, res.ManifestDigest, len(res.Manifest))
		}
	}
	if !found {
		t.Errorf("%s: index.json has no manifest tagged %q:\n%s", dir, tag, indexRaw)
	}
	blobs := filepath.Join(dir, "blobs", "sha256")
	ents, err := os.ReadDir(blobs)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		d := digest.NewDigestFromEncoded(digest.SHA256, ent.Name())
		if err := d.Validate(); err != nil {
			t.Errorf("%s: blob file %s is not named by a digest", dir, ent.Name())
			continue
		}
		got, err := fileDigest(filepath.Join(blobs, ent.Name()))
		if err != nil {
			t.Error(err)
		} else if got != d {
			t.Errorf("%s: blob %s hashes to %s", dir, d, got)
		}
	}
	blobPath := func(d digest.Digest) string { return filepath.Join(blobs, d.Encoded()) }
	mRaw, err := os.ReadFile(blobPath(res.ManifestDigest))
	if err != nil {
		t.Fatalf("%s: manifest blob: %v", dir, err)
	}
	m := parseManifest(t, dir, mRaw)
	cfgRaw, err := os.ReadFile(blobPath(m.Config.Digest))
	if err != nil {
		t.Fatalf("%s: config blob: %v", dir, err)
	}
	var cfg configDoc
	if err := json.Unmarshal(cfgRaw, &cfg); err != nil {
		t.Fatalf("%s: parsing config: %v", dir, err)
	}
	checkLayers(t, dir, m, cfg, blobPath)
}

// checkDockerArchive checks a docker-archive tarball: its manifest.json
// names the tag, the config is the one skopeo read, and each layer file
// holds the uncompressed layer its diffID names.
func checkDockerArchive(t *testing.T, tg target, cfg configDoc, cfgRaw []byte) {
	t.Helper()
	dir := t.TempDir()
	extractTar(t, tg.path, dir)
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var items []struct {
		Config   string   `json:"Config"`
		RepoTags []string `json:"RepoTags"`
		Layers   []string `json:"Layers"`
	}
	if err := json.Unmarshal(raw, &items); err != nil || len(items) != 1 {
		t.Fatalf("%s: manifest.json holds %d images (%v), want 1:\n%s", tg.name, len(items), err, raw)
	}
	it := items[0]
	if !slices.Contains(it.RepoTags, tg.tag) {
		t.Errorf("%s: tags %v, want %s", tg.name, it.RepoTags, tg.tag)
	}
	if got, err := os.ReadFile(filepath.Join(dir, it.Config)); err != nil || !bytes.Equal(got, cfgRaw) {
		t.Errorf("%s: config %s differs from what skopeo inspect read (%v)", tg.name, it.Config, err)
	}
	if len(it.Layers) != len(cfg.RootFS.DiffIDs) {
		t.Fatalf("%s: %d layers for %d diff_ids", tg.name, len(it.Layers), len(cfg.RootFS.DiffIDs))
	}
	for i, l := range it.Layers {
		p := filepath.Join(dir, l)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		desc := v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: cfg.RootFS.DiffIDs[i], Size: fi.Size()}
		if err := checkLayerBlob(p, desc, cfg.RootFS.DiffIDs[i]); err != nil {
			t.Errorf("%s: layer %d (%s): %v", tg.name, i, l, err)
		}
	}
}

// checkStorage checks an image committed to the store from outside: buildah
// lists it under its name and ID (skopeo has already read it).
func checkStorage(t *testing.T, e *env, tg target, res bricklayer.CommitResult) {
	t.Helper()
	if res.ImageID == "" {
		t.Errorf("%s: commit returned no image ID", tg.name)
	}
	buildah := testutil.RequireTool(t, "buildah")
	out := testutil.Run(t, e.toolEnv, buildah, "--root", e.root, "--runroot", e.runroot, "--storage-driver", "vfs", "images", "--json", "--no-trunc")
	var images []struct {
		ID    string   `json:"id"`
		Names []string `json:"names"`
	}
	if err := json.Unmarshal(out, &images); err != nil {
		t.Fatalf("parsing buildah images --json: %v\n%s", err, out)
	}
	for _, img := range images {
		if strings.TrimPrefix(img.ID, "sha256:") == res.ImageID {
			if !slices.Contains(img.Names, tg.tag) {
				t.Errorf("buildah lists image %s as %v, want the name %s", img.ID, img.Names, tg.tag)
			}
			return
		}
	}
	t.Errorf("buildah images does not list %s (%s):\n%s", res.ImageID, tg.tag, out)
}

func fileDigest(path string) (digest.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	d, err := digest.Canonical.FromReader(f)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return d, nil
}

// extractTar unpacks the regular files and directories of the tar file src
// into dir (enough for image archives).
func extractTar(t *testing.T, src, dir string) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("reading %s: %v", src, err)
		}
		name := filepath.Clean(hdr.Name)
		if !filepath.IsLocal(name) {
			t.Fatalf("%s: entry %q leaves the archive", src, hdr.Name)
		}
		p := filepath.Join(dir, name)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			out, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(out, tr); err != nil {
				t.Fatalf("extracting %s from %s: %v", hdr.Name, src, err)
			}
			if err := out.Close(); err != nil {
				t.Fatal(err)
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(hdr.Linkname, p); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("%s: unexpected entry %q of type %q", src, hdr.Name, hdr.Typeflag)
		}
	}
}
