package bricklayer

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/bricklayer/bricklayer/internal/layerexport"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
)

// This file lets a commit into an OCI layout take a base layer's compressed
// blob from the layout, when the layout holds one already, instead of
// compressing the layer again. A layout that a build commits into again and
// again (one tag per step, or per release) holds the base image's layers
// from the first commit on; recompressing them is most of what a commit on a
// large base costs. The layout says which blob holds which layer: each image
// manifest lists its layer blobs, and its config lists the same layers'
// diffIDs in the same order. That is only the layout's claim, so a blob is
// checked before it is taken (holdsLayer). copy.Image then finds the blob
// present and copies nothing.

// maxLayoutJSON bounds the manifests, indexes and configs read from a
// layout: real ones are a few KiB, and a larger one is not read.
const maxLayoutJSON = 4 << 20

// layoutBlobs indexes an OCI layout's layer blobs by the diffID that the
// layout's images record for them.
type layoutBlobs struct {
	dir     string // the layout's blobs/sha256 directory
	byDiff  map[digest.Digest][]v1.Descriptor
	visited map[digest.Digest]bool // manifests and indexes read
}

// readLayoutBlobs reads the layout whose blobs/sha256 directory is blobDir.
// What cannot be read (a missing or malformed index, manifest or config, a
// blob that does not match its name) is left out: a layer not found is
// exported as if the layout did not have it.
func readLayoutBlobs(blobDir string) *layoutBlobs {
	lb := &layoutBlobs{dir: blobDir, byDiff: map[digest.Digest][]v1.Descriptor{}, visited: map[digest.Digest]bool{}}
	indexPath := filepath.Join(filepath.Dir(filepath.Dir(blobDir)), v1.ImageIndexFile)
	f, err := os.Open(indexPath)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			logrus.Debugf("reading %s: %v", indexPath, err)
		}
		return lb
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxLayoutJSON+1))
	if err != nil || len(data) > maxLayoutJSON {
		logrus.Debugf("reading %s: too large or unreadable: %v", indexPath, err)
		return lb
	}
	lb.addIndex(data, 0)
	return lb
}

// layoutManifest holds the fields of an OCI index or image manifest, or a
// Docker manifest list or v2s2 manifest, that say where layers are.
type layoutManifest struct {
	Manifests []v1.Descriptor `json:"manifests"`
	Config    v1.Descriptor   `json:"config"`
	Layers    []v1.Descriptor `json:"layers"`
}

// layoutConfig holds the diffIDs of an OCI or Docker image config.
type layoutConfig struct {
	RootFS struct {
		DiffIDs []digest.Digest `json:"diff_ids"`
	} `json:"rootfs"`
}

// addIndex adds the images an index (or manifest list) refers to, following
// nested indexes a few levels down.
func (lb *layoutBlobs) addIndex(data []byte, depth int) {
	var idx layoutManifest
	if err := json.Unmarshal(data, &idx); err != nil || depth > 3 {
		return
	}
	for _, d := range idx.Manifests {
		if lb.visited[d.Digest] {
			continue
		}
		m, ok := lb.readJSON(d)
		if !ok {
			continue
		}
		lb.visited[d.Digest] = true
		var parsed layoutManifest
		if err := json.Unmarshal(m, &parsed); err != nil {
			continue
		}
		if len(parsed.Manifests) > 0 {
			lb.addIndex(m, depth+1)
			continue
		}
		lb.addImage(parsed)
	}
}

// addImage pairs an image's layer descriptors with its config's diffIDs.
func (lb *layoutBlobs) addImage(m layoutManifest) {
	data, ok := lb.readJSON(m.Config)
	if !ok {
		return
	}
	var c layoutConfig
	if err := json.Unmarshal(data, &c); err != nil || len(c.RootFS.DiffIDs) != len(m.Layers) {
		return
	}
	for i, d := range m.Layers {
		diffID := c.RootFS.DiffIDs[i]
		lb.byDiff[diffID] = append(lb.byDiff[diffID], v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size})
	}
}

// readJSON reads the small blob d names and checks it against its digest
// and size.
func (lb *layoutBlobs) readJSON(d v1.Descriptor) ([]byte, bool) {
	if !inBlobDir(d.Digest) || d.Size > maxLayoutJSON {
		return nil, false
	}
	data, err := os.ReadFile(filepath.Join(lb.dir, d.Digest.Encoded()))
	if err != nil || int64(len(data)) != d.Size || digest.SHA256.FromBytes(data) != d.Digest {
		logrus.Debugf("layout blob %s: unreadable or not what its descriptor says, not used", d.Digest)
		return nil, false
	}
	return data, true
}

// inBlobDir says whether d is a valid sha256 digest, a file name in the
// layout's blobs/sha256 and nowhere else.
func inBlobDir(d digest.Digest) bool {
	return d.Validate() == nil && d.Algorithm() == digest.SHA256
}

// layoutBlob is a blob of the layout that may hold a base layer.
type layoutBlob struct {
	v1.Descriptor
	path string
}

// candidates returns the blobs of the layout that may hold the layer with
// diffID compressed with c: first the base image's own blob (want), then
// those that the layout's images pair with diffID. Each blob file exists
// with its descriptor's size; whether it holds the layer is for
// holdsLayer to say.
func (lb *layoutBlobs) candidates(diffID digest.Digest, c Compression, want v1.Descriptor) []layoutBlob {
	var out []layoutBlob
	seen := map[digest.Digest]bool{}
	for _, d := range append([]v1.Descriptor{want}, lb.byDiff[diffID]...) {
		dc, ok := plainLayerCompression(d.MediaType)
		if !ok || dc != c || seen[d.Digest] || !inBlobDir(d.Digest) {
			continue
		}
		seen[d.Digest] = true
		path := filepath.Join(lb.dir, d.Digest.Encoded())
		if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() || fi.Size() != d.Size {
			continue
		}
		out = append(out, layoutBlob{Descriptor: d, path: path})
	}
	return out
}

// holdsLayer reads blob b, compressed with c, and says whether it is what
// its name says and decompresses to the layer with diffID. The layout's
// images only claim so; a blob taken on that claim alone would make a broken
// image out of a broken layout. When the blob info cache pairs the blob
// with diffID (paired), a pair that this or another containers tool
// computed itself, only the blob's own digest is checked; else it is
// decompressed too, which costs a fraction of compressing the layer again.
func holdsLayer(ctx context.Context, b layoutBlob, c Compression, diffID digest.Digest, paired bool) (bool, error) {
	f, err := os.Open(b.path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	blobHash := sha256.New()
	raw := io.TeeReader(&ctxReader{ctx: ctx, r: f}, blobHash)
	if paired {
		if _, err := io.Copy(io.Discard, raw); err != nil {
			return false, err
		}
		return digest.NewDigest(digest.SHA256, blobHash) == b.Digest, nil
	}
	in := bufio.NewReaderSize(raw, 1<<20)
	diffHash := sha256.New()
	if err := decompressTo(diffHash, in, c, zstd.WithDecoderMaxWindow(maxReuseWindow)); err != nil {
		return false, err
	}
	// What the decompressor left unread still counts for the blob's digest.
	if _, err := io.Copy(io.Discard, in); err != nil {
		return false, err
	}
	return digest.NewDigest(digest.SHA256, blobHash) == b.Digest && digest.NewDigest(digest.SHA256, diffHash) == diffID, nil
}

// maxReuseWindow bounds the memory a zstd blob of the layout may ask for
// when it is read back: our own zstd layers use a 4 MiB window, most tools
// 8 MiB. A blob that needs more is not taken; the layer is exported.
const maxReuseWindow = 16 << 20

// takeLayoutBlob returns the first of job's candidate blobs that holds
// the job's layer, or false when none does.
func (s *imageSource) takeLayoutBlob(ctx context.Context, job exportJob) (exportedLayer, bool) {
	c := s.ref.opts.Compression
	for _, b := range job.candidates {
		paired := s.blobCache.UncompressedDigest(b.Digest) == job.wantDiffID
		ok, err := holdsLayer(ctx, b, c, job.wantDiffID, paired)
		if err != nil || !ok {
			logrus.Debugf("base layer %s: the layout's blob %s does not hold it (%v), not taken", job.layer.ID, b.Digest, err)
			continue
		}
		if !paired {
			s.blobCache.RecordDigestUncompressedPair(b.Digest, job.wantDiffID)
		}
		logrus.Debugf("base layer %s: taken from the layout's blob %s (%d bytes), not exported again", job.layer.ID, b.Digest, b.Size)
		return exportedLayer{Digests: layerexport.Digests{DiffID: job.wantDiffID, UncompressedSize: job.layer.UncompressedSize, Digest: b.Digest, Size: b.Size}, path: b.path}, true
	}
	return exportedLayer{}, false
}
