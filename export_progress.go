package bricklayer

import (
	"io"

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
