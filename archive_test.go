package bricklayer

import (
	"bytes"
	"os"
	"sync"
	"testing"
	"time"
)

// TestUncompressedDestinationsExportUncompressed commits, with each
// compression, to the destinations that store layers uncompressed: a
// docker-archive, and another store than the builder's. The export
// compresses nothing (each exported blob is as long as the diff read), and
// the destination gets the same image: the archive byte for byte, the store
// the same image ID.
func TestUncompressedDestinationsExportUncompressed(t *testing.T) {
	e := newLayoutReuseEnv(t)
	other := newTestStore(t)
	stamp := time.Unix(1700000000, 0)
	for _, dest := range []string{"docker-archive", "other-store"} {
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
			if dest == "other-store" {
				ref = storeRef(t, other, "localhost/app:"+c.String())
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
