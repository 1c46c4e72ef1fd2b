package bricklayer

import (
	"archive/tar"
	"fmt"
	"path"
	"unicode/utf8"

	"github.com/bricklayer/bricklayer/internal/tarnorm"
)

// containers/storage walks a tree through io/fs (archive.TarWithOptions)
// to make some diffs, the overlay driver's native ones among them, and
// io/fs refuses names that are not valid UTF-8: such a directory is
// written into the diff, but its contents are left out, and nothing but a
// log line says so. The overlay driver walks a layer it is given the same
// way, and fails on such a directory. With the vfs and overlay drivers a
// commit reads no new layer through that walk (treetar reads them all),
// but a commit into an overlay store fails on such a name with
// [ErrUnreadableName] before the store is given the layer.

// normalization returns the commit's normalisation of a new layer; for a
// layer written into an overlay store (intoOverlay), it also fails the
// export with [ErrUnreadableName] at the first directory whose name is
// not valid UTF-8.
func (s *imageSource) normalization(intoOverlay bool) *tarnorm.Options {
	n := s.ref.opts.tarNormalization()
	if intoOverlay {
		n.Check = func(hdr *tar.Header) error {
			if hdr.Typeflag == tar.TypeDir && !utf8.ValidString(hdr.Name) {
				return fmt.Errorf("directory %q: %w", path.Clean("/"+hdr.Name), ErrUnreadableName)
			}
			return nil
		}
	}
	return n
}
