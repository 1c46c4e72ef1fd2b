package treetar

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/bricklayer/bricklayer/internal/tarnorm"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// Overlay says that a tree is the upper directory of an overlay layer, so
// that [Write] writes it as the layer's diff, the way containers/storage's
// overlay driver writes its native diff:
//
//   - A whiteout (a character device numbered 0, 0) becomes a ".wh." entry
//     for the name it hides. Each is written on its own, with no owner,
//     mode or link: the kernel shares one inode among the whiteouts of a
//     mount and creates them as the mounter, so neither their links nor
//     their owners say anything about the layer. (containers/storage writes
//     the second whiteout of a shared inode with the first one's name as
//     its link name, and leaves out one whose owner the layer's ID mapping
//     does not hold, so that the file it hides comes back.)
//   - An opaque directory (OpaqueXattr "y") is followed by a
//     ".wh..wh..opq" entry when a layer below holds that directory, so
//     that what it held there is hidden.
type Overlay struct {
	// Lowers are the diff directories of the layers below, nearest first.
	Lowers []string
	// OpaqueXattr is the extended attribute that marks an opaque
	// directory: trusted.overlay.opaque, or user.overlay.opaque where the
	// driver runs without privileges.
	OpaqueXattr string
}

// isWhiteout reports whether st is an overlay whiteout.
func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

// whiteoutHeader returns the entry that deletes name in directory dir (with
// a trailing slash, "" for the root), as a layer's tar stream holds it.
func whiteoutHeader(dir, name string) *tar.Header {
	return &tar.Header{Name: dir + tarnorm.WhiteoutPrefix + name, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
}

// opaqueHeader returns the entry that follows the header dir of a
// directory (open as fd) when it is opaque and hides a directory of a
// layer below, or nil. It has the directory's owner and permissions, as
// containers/storage writes it.
func (o *Overlay) opaqueHeader(fd int, dir *tar.Header) (*tar.Header, error) {
	var value [2]byte
	n, err := unix.Fgetxattr(fd, o.OpaqueXattr, value[:])
	if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ERANGE) {
		return nil, nil // not opaque: no attribute, or not "y"
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", o.OpaqueXattr, err)
	}
	if n != 1 || value[0] != 'y' {
		return nil, nil
	}
	hides, err := o.below(strings.TrimSuffix(dir.Name, "/"))
	if err != nil || !hides {
		return nil, err
	}
	return &tar.Header{
		Name:     dir.Name + tarnorm.OpaqueMarker,
		Typeflag: tar.TypeReg,
		Mode:     dir.Mode & 0o777,
		Uid:      dir.Uid,
		Gid:      dir.Gid,
		ModTime:  time.Unix(0, 0),
	}, nil
}

// below reports whether a layer below holds the directory at rel: the
// nearest layer that holds it, or hides it or a directory above it with a
// whiteout, decides. Paths are resolved inside each layer's directory,
// symbolic links included, never out of it.
func (o *Overlay) below(rel string) (bool, error) {
	for _, lower := range o.Lowers {
		st, err := statIn(lower, rel)
		if err != nil {
			return false, err
		}
		if st != nil {
			return !isWhiteout(st), nil
		}
		for dir := path.Dir(rel); dir != "."; dir = path.Dir(dir) {
			st, err := statIn(lower, dir)
			if err != nil {
				return false, err
			}
			if st != nil && isWhiteout(st) {
				return false, nil
			}
		}
	}
	return false, nil
}

// statIn returns the status of rel inside the directory root, or nil when
// there is no such file.
func statIn(root, rel string) (*unix.Stat_t, error) {
	dir, err := os.Open(root)
	if err != nil {
		return nil, fmt.Errorf("opening the lower layer %s: %w", root, err)
	}
	defer dir.Close()
	f, err := pathrs.OpenatInRoot(dir, rel)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking for %q in the lower layer %s: %w", "/"+rel, root, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("looking for %q in the lower layer %s: %w", "/"+rel, root, err)
	}
	return &st, nil
}
