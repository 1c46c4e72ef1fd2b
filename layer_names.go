package bricklayer

import (
	"archive/tar"
	"fmt"
	"path"
	"unicode/utf8"

	"github.com/bricklayer/bricklayer/internal/tarnorm"
	"go.podman.io/storage"
)

// containers/storage makes some diffs by walking the layer's tree through
// io/fs (archive.TarWithOptions), which refuses names that are not valid
// UTF-8: such a directory is written into the diff, but its contents are
// left out, and nothing but a log line says so. Of the diffs a commit
// reads, those are the diffs of the overlay driver's layers that have a
// parent (the driver tars the layer's own directory, and cannot store such
// a directory either). A layer without a parent, and the squashed tree of a
// whole image, are walked by treetar, and a diff made from a list of
// changes (the vfs driver's, for a layer with a parent) is written by
// name: neither has that limit, and no diff has it for files.

// walkedDiff is true when layer l's diff, read by store.Diff or from its
// list of changes, is made by walking a tree through io/fs.
func walkedDiff(store storage.Store, l *storage.Layer) bool {
	return l.Parent != "" && store.GraphDriverName() == "overlay"
}

// normalization returns the commit's normalisation of a new layer; when its
// diff was walked, it also fails the export with [ErrUnreadableName] at the
// first directory whose name is not valid UTF-8, as the walk left that
// directory's contents out.
func (s *imageSource) normalization(walked bool) *tarnorm.Options {
	n := s.ref.opts.tarNormalization()
	if walked {
		n.Check = func(hdr *tar.Header) error {
			if hdr.Typeflag == tar.TypeDir && !utf8.ValidString(hdr.Name) {
				return fmt.Errorf("directory %q: %w", path.Clean("/"+hdr.Name), ErrUnreadableName)
			}
			return nil
		}
	}
	return n
}
