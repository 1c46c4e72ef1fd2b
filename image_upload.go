package bricklayer

import (
	"context"
	"io"

	"github.com/bricklayer/bricklayer/internal/layerexport"
	digest "github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/types"
)

// A registry cannot take a manifest before its blobs, and copy.Image reads
// the manifest, which needs every layer's digest, before it uploads
// anything: left to itself, a push exports the new layers, then uploads
// them. An uploader overlaps the two: each new layer's blob file is
// streamed to the registry as it is written, and when copy.Image comes to
// the layer the registry has it already.
//
// Uploading ahead is an optimisation only. If it fails, the export goes on,
// and copy.Image uploads the blob file as it would have anyway.
type uploader struct {
	dest types.ImageDestination
}

// openUploader opens ref for uploads ahead of copy.Image, or returns nil if
// it cannot be opened (copy.Image will say why).
func openUploader(ctx context.Context, ref types.ImageReference, sys *types.SystemContext) *uploader {
	dest, err := ref.NewImageDestination(ctx, sys)
	if err != nil {
		logrus.Debugf("not uploading layers ahead to %s: %v", ref.StringWithinTransport(), err)
		return nil
	}
	return &uploader{dest: dest}
}

// Close closes the destination; the blobs uploaded stay in the registry.
func (u *uploader) Close() error {
	return u.dest.Close()
}

// follow returns a follower for layerexport.Options.Follow that uploads
// the blob of the layer layerID, and a function that, once the export has
// returned, says what the upload did. When the export is complete and the
// upload is not, a registry that has the blob already (a layer pushed
// before) ends the upload: copy.Image will find the blob there.
func (u *uploader) follow(ctx context.Context, layerID string) (follow func(io.Reader, <-chan layerexport.Digests), report func()) {
	var uploaded digest.Digest
	var uploadErr error
	present := false
	follow = func(blob io.Reader, done <-chan layerexport.Digests) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		result := make(chan struct{})
		go func() {
			defer close(result)
			info, err := u.dest.PutBlob(ctx, blob, types.BlobInfo{Size: -1}, none.NoCache, false)
			uploaded, uploadErr = info.Digest, err
		}()
		select {
		case <-result:
			return
		case d, ok := <-done:
			if ok && u.has(ctx, d) {
				present = true
				cancel()
			}
		}
		<-result
	}
	report = func() {
		switch {
		case present:
			logrus.Debugf("layer %s: the registry has its blob already, upload ahead stopped", layerID)
		case uploadErr != nil:
			logrus.Debugf("uploading layer %s ahead failed, copy.Image will upload it: %v", layerID, uploadErr)
		default:
			logrus.Debugf("uploaded layer %s ahead as %s", layerID, uploaded)
		}
	}
	return follow, report
}

// has says whether the registry holds the blob d already.
func (u *uploader) has(ctx context.Context, d layerexport.Digests) bool {
	found, _, err := u.dest.TryReusingBlob(ctx, types.BlobInfo{Digest: d.Digest, Size: d.Size}, none.NoCache, false)
	return err == nil && found
}

// registryMayHave says whether the blob info cache knows a blob of the
// layer with diffID in dest's registry (nil: no registry), which
// copy.Image would then reuse, or mount from another repository, rather
// than upload: a base layer pushed there before. copy.Image is more
// particular (it takes only blobs whose compression the cache knows); when
// it finds nothing it compresses the layer itself, as it did before
// bricklayer exported base layers for registries.
func (s *imageSource) registryMayHave(dest types.ImageReference, diffID digest.Digest) bool {
	if dest == nil || dest.DockerReference() == nil {
		return false
	}
	scope := types.BICTransportScope{Opaque: reference.Domain(dest.DockerReference())}
	return len(s.blobCache.CandidateLocations(dest.Transport(), scope, diffID, true)) > 0
}
