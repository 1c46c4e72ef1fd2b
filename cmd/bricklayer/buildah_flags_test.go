package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestBuildahCompressionFlags: commit takes buildah's compression flags
// beside its own, as peer.sh and scripts written for buildah pass them,
// and each gives the layer the compression it names: both the manifest's
// media type and the blob's first bytes say so. --compression, when given,
// wins; --compression-format alone compresses, as --compression does.
func TestBuildahCompressionFlags(t *testing.T) {
	c, tmp := newCLI(t)
	c.ok("from", "scratch", "--name", "ctr")
	src := filepath.Join(tmp, "src")
	writeFile(t, filepath.Join(src, "f"), strings.Repeat("compressible\n", 1000), 0o644)
	c.ok("copy", "ctr", src, "/")

	const (
		tar  = v1.MediaTypeImageLayer
		gzip = v1.MediaTypeImageLayerGzip
		zstd = v1.MediaTypeImageLayerZstd
	)
	for i, tc := range []struct {
		flags []string
		want  string
	}{
		{nil, gzip},
		{[]string{"--disable-compression"}, tar},
		{[]string{"-D"}, tar},
		{[]string{"--disable-compression=true"}, tar},
		{[]string{"--disable-compression=false"}, gzip},
		{[]string{"--disable-compression=false", "--compression-format", "zstd"}, zstd},
		{[]string{"--disable-compression=false", "--compression-format", "gzip"}, gzip},
		{[]string{"--compression-format", "zstd"}, zstd},
		{[]string{"--disable-compression", "--compression-format", "zstd"}, tar},
		{[]string{"--compression", "none", "--disable-compression=false"}, tar},
		{[]string{"--compression", "zstd", "--disable-compression"}, zstd},
	} {
		dir := filepath.Join(tmp, "out-"+string(rune('a'+i)))
		args := append([]string{"commit", "-q"}, tc.flags...)
		c.ok(append(args, "ctr", "oci:"+dir+":x")...)
		var index v1.Index
		readJSON(t, filepath.Join(dir, "index.json"), &index)
		var m v1.Manifest
		readBlobJSON(t, dir, index.Manifests[0].Digest, &m)
		if len(m.Layers) != 1 {
			t.Fatalf("%q: %d layers, want 1", tc.flags, len(m.Layers))
		}
		layer := m.Layers[0]
		blob := readBlob(t, dir, layer.Digest)
		var got string
		switch {
		case bytes.HasPrefix(blob, []byte{0x1f, 0x8b}):
			got = gzip
		case bytes.HasPrefix(blob, []byte{0x28, 0xb5, 0x2f, 0xfd}):
			got = zstd
		case len(blob) > 262 && string(blob[257:262]) == "ustar":
			got = tar
		}
		if layer.MediaType != tc.want || got != tc.want {
			t.Errorf("%q: layer media type %s, blob %s; want %s", tc.flags, layer.MediaType, got, tc.want)
		}
	}
}
