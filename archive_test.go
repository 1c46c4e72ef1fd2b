package bricklayer

import (
	"bytes"
	"os"
	"sync"
	"testing"
	"time"
)

// TestDockerArchiveExportsUncompressed commits to a docker-archive, which
// stores layers uncompressed, with each compression: the export compresses
// nothing (each exported blob is as long as the diff read), and the archive
// is byte for byte the one an uncompressed commit writes.
func TestDockerArchiveExportsUncompressed(t *testing.T) {
	e := newLayoutReuseEnv(t)
	stamp := time.Unix(1700000000, 0)
	var want []byte
	for _, c := range []Compression{CompressionNone, CompressionGzip, CompressionZstd} {
		path := e.dir(t, "image.tar")
		var mu sync.Mutex
		var done []LayerProgress
		opts := CommitOptions{SystemContext: e.sys, Compression: c, HistoryTimestamp: &stamp, ExportProgress: func(p LayerProgress) {
			if p.Done {
				mu.Lock()
				done = append(done, p)
				mu.Unlock()
			}
		}}
		if _, err := e.b.Commit(e.ctx, parseRef(t, "docker-archive:"+path+":archive/app:1"), opts); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if len(done) == 0 {
			t.Errorf("%s: no layer reported exported", c)
		}
		for _, p := range done {
			if p.Size != p.Read {
				t.Errorf("%s: layer %s exported as a %d-byte blob from %d bytes of diff, want it uncompressed", c, p.LayerID, p.Size, p.Read)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if want == nil {
			want = got
		} else if !bytes.Equal(got, want) {
			t.Errorf("%s: the archive (%d bytes) differs from the uncompressed commit's (%d bytes)", c, len(got), len(want))
		}
	}
}
