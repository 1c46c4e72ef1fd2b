package bricklayer

import (
	"bytes"
	"os"
	"sync"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestUncompressedDestinationsExportUncompressed commits, with each
// compression, to the destinations that store layers uncompressed: a
// docker-archive, another store than the builder's, and a dir: directory
// with DirForceDecompress. The export compresses nothing (each exported
// blob is as long as the diff read), and the destination gets the same
// image: the archive byte for byte, the store the same image ID, the
// directory the same manifest.
func TestUncompressedDestinationsExportUncompressed(t *testing.T) {
	e := newLayoutReuseEnv(t)
	other := newTestStore(t)
	stamp := time.Unix(1700000000, 0)
	for _, dest := range []string{"docker-archive", "other-store", "dir-decompress"} {
		var want []byte
		for _, c := range []Compression{CompressionNone, CompressionGzip, CompressionZstd} {
			var mu sync.Mutex
			var done []LayerProgress
			opts := CommitOptions{SystemContext: e.sys, Compression: c, HistoryTimestamp: &stamp, ExportProgress: func(p LayerProgress) {
				if p.Done {
					mu.Lock()
					done = append(done, p)
					mu.Unlock()
				}
			}}
			path := e.dir(t, "image.tar")
			ref := parseRef(t, "docker-archive:"+path+":archive/app:1")
			switch dest {
			case "other-store":
				ref = storeRef(t, other, "localhost/app:"+c.String())
			case "dir-decompress":
				ref = parseRef(t, "dir:"+e.dir(t, "dir"))
				sys := *e.sys
				sys.DirForceDecompress = true
				opts.SystemContext = &sys
			}
			res, err := e.b.Commit(e.ctx, ref, opts)
			if err != nil {
				t.Fatalf("%s, %s: %v", dest, c, err)
			}
			if len(done) == 0 {
				t.Errorf("%s, %s: no layer reported exported", dest, c)
			}
			for _, p := range done {
				if p.Size != p.Read {
					t.Errorf("%s, %s: layer %s exported as a %d-byte blob from %d bytes of diff, want it uncompressed", dest, c, p.LayerID, p.Size, p.Read)
				}
			}
			got := []byte(res.ImageID)
			if dest == "dir-decompress" {
				got = res.Manifest
			}
			if dest == "docker-archive" {
				if got, err = os.ReadFile(path); err != nil {
					t.Fatal(err)
				}
			}
			if want == nil {
				want = got
			} else if !bytes.Equal(got, want) {
				t.Errorf("%s, %s: the image differs from the uncompressed commit's", dest, c)
			}
		}
	}
}

// TestPushWithoutCompressionExportsGzip pushes with CompressionNone to a
// registry, where containers/image would compress every layer itself, one
// stream at a time: the export compresses them instead, so each exported
// blob is smaller than the diff read, and the registry holds gzip layers,
// base layer included.
func TestPushWithoutCompressionExportsGzip(t *testing.T) {
	e := newLayoutReuseEnv(t)
	reg := startRegistry(t, e.dir(t, "registry"))
	e.sys = reg.sys(t, e.sys)
	var mu sync.Mutex
	var done []LayerProgress
	opts := CommitOptions{Compression: CompressionNone, ExportProgress: func(p LayerProgress) {
		if p.Done {
			mu.Lock()
			done = append(done, p)
			mu.Unlock()
		}
	}}
	ref := reg.ref(t, "app:1")
	opts.SystemContext = e.sys
	res, err := e.b.Commit(e.ctx, ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	img := checkImageWith(t, ref, e.sys, wantImage{Layers: 2, LayerMediaType: layerMediaType(v1.MediaTypeImageManifest, CompressionGzip)})
	checkResult(t, res, img)
	if len(done) != 2 {
		t.Errorf("%d layers reported exported, want the base layer and the new one: %+v", len(done), done)
	}
	for _, p := range done {
		if p.Size >= p.Read {
			t.Errorf("layer %s exported as a %d-byte blob from %d bytes of diff, want it compressed", p.LayerID, p.Size, p.Read)
		}
	}
}
