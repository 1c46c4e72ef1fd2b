package bricklayer

import (
	"io"

	"github.com/bricklayer/bricklayer/internal/layerexport"
	digest "github.com/opencontainers/go-digest"
)

// LayerProgress says how far the export of one of a commit's new layers has
// got. See [CommitOptions].ExportProgress.
type LayerProgress struct {
	// LayerID is the storage layer being exported (the container's top
	// layer for a squash), or "extra-content" for the layer of
	// CommitOptions.ExtraImageContent.
	LayerID string
	// Read is how many bytes of the layer's uncompressed diff have been read
	// so far.
	Read int64
	// Done is set on the last report for the layer, after its blob is
	// complete; Digest and Size are then the blob's digest and length.
	Done   bool
	Digest digest.Digest
	Size   int64
	// Taken, set on a base layer's only report (Done, nothing read), says
	// where its blob was taken from instead of being exported: TakenLayout
	// or TakenBlobCache.
	Taken string
}

// Where a base layer's blob was taken from (LayerProgress.Taken).
const (
	// TakenLayout is the OCI layout destination, which held the blob.
	TakenLayout = "layout"
	// TakenBlobCache is CommitOptions.BlobCacheDir.
	TakenBlobCache = "blob cache"
)

// trackProgress returns r, reporting each read to ExportProgress as layer
// id's when that is set, and the function that makes the layer's last
// report, Done, once its blob is complete with digests d.
func (s *imageSource) trackProgress(id string, r io.Reader) (io.Reader, func(d layerexport.Digests)) {
	fn := s.ref.opts.ExportProgress
	if fn == nil {
		return r, func(layerexport.Digests) {}
	}
	p := &progressReader{r: r, layerID: id, fn: fn}
	return p, func(d layerexport.Digests) {
		fn(LayerProgress{LayerID: id, Read: p.read, Done: true, Digest: d.Digest, Size: d.Size})
	}
}

// progressReader reports the bytes read through it to fn.
type progressReader struct {
	r       io.Reader
	layerID string
	read    int64
	fn      func(LayerProgress)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.read += int64(n)
		p.fn(LayerProgress{LayerID: p.layerID, Read: p.read})
	}
	return n, err
}
