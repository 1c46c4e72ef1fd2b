package bricklayer

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	digest "github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	"go.podman.io/image/v5/types"
	"golang.org/x/sys/unix"
)

// A dir: destination cannot have blobs written into it before copy.Image
// opens it, as an OCI layout can: containers/image refuses a directory that
// holds files but no image, and empties one that holds an image. The
// commit exports before copy.Image runs, so that a failed export leaves the
// destination untouched; the blobs go to the source's temporary directory,
// synced as a destination's are, and once containers/image has opened the
// directory they are hard-linked into it under the names it gives blobs.
// copy.Image then finds each one there (TryReusingBlob) and copies none.

// linkingReference is a dir: destination whose NewImageDestination links
// blobs, by digest, from their exported files into dir. A blob that cannot
// be linked is left to copy.Image to write.
type linkingReference struct {
	types.ImageReference
	dir   string
	blobs map[digest.Digest]string
}

func (r linkingReference) NewImageDestination(ctx context.Context, sys *types.SystemContext) (types.ImageDestination, error) {
	dest, err := r.ImageReference.NewImageDestination(ctx, sys)
	if err != nil {
		return nil, err
	}
	for d, path := range r.blobs {
		if d.Algorithm() != digest.Canonical {
			continue // containers/image names those otherwise
		}
		err := os.Link(path, filepath.Join(r.dir, d.Encoded()))
		if err != nil && !errors.Is(err, fs.ErrExist) {
			logrus.Debugf("linking blob %s into %s: %v; containers/image will copy it", d, r.dir, err)
		}
	}
	return dest, nil
}

// sameFilesystem reports whether the directories a and b are on one
// filesystem, where a file of one can be linked into the other.
func sameFilesystem(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev
}

// blobFiles lists the blobs the source serves from exported files.
func (s *imageSource) blobFiles() map[digest.Digest]string {
	files := map[digest.Digest]string{}
	for d, bl := range s.blobs {
		if bl.path != "" {
			files[d] = bl.path
		}
	}
	return files
}
