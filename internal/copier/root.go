// Package copier writes host files, host directories and tar archives into a
// container's root filesystem without ever writing outside it.
//
// Every path inside the root is resolved as if the root were "/": symbolic
// links, absolute or relative, are followed but can never climb above the
// root (filepath-securejoin's pathrs-lite does the walking, with
// openat2(RESOLVE_IN_ROOT) where the kernel has it). The last component of a
// path being written is never followed: whatever non-directory is there is
// removed and a new item is created in its place, so a write can't go through
// an existing symlink or hard link either.
package copier

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// Errors a caller can test for with errors.Is.
var (
	// ErrPathEscape: an archive entry or hard link target names a path that
	// leaves the directory it is extracted into ("../x").
	ErrPathEscape = errors.New("path leaves the destination")
	// ErrReservedName: a file name starts with ".wh.", which a layer can't
	// hold as a file, since it marks a deletion there.
	ErrReservedName = errors.New("name is reserved for layer whiteouts")
	// ErrUnknownUser: a user or group name is not in the container's
	// /etc/passwd or /etc/group.
	ErrUnknownUser = errors.New("user or group not found in the container")
	// ErrInvalidChown: an owner specification can't be parsed.
	ErrInvalidChown = errors.New("invalid owner")
)

// WhiteoutPrefix starts the names that mark deletions in a layer.
const WhiteoutPrefix = ".wh."

// maxReadFile is the most [Root.ReadFile] reads.
const maxReadFile = 16 << 20

// Root is a directory opened as the root of confined writes. A Root is not
// safe for concurrent use.
type Root struct {
	path string
	dir  *os.File // O_PATH handle of the root directory
}

// OpenRoot opens the directory at hostPath as a Root. The caller must Close
// it.
func OpenRoot(hostPath string) (*Root, error) {
	f, err := os.OpenFile(hostPath, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening root directory %s: %w", hostPath, err)
	}
	return &Root{path: hostPath, dir: f}, nil
}

// Close releases the root's handle.
func (r *Root) Close() error { return r.dir.Close() }

// Path is the host path the root was opened at.
func (r *Root) Path() string { return r.path }

// Clean returns p as an absolute, clean path in the root: relative paths
// are taken from the root, and ".." at the top stays at the top.
func Clean(p string) string { return path.Clean("/" + p) }

// IsDir reports whether p names a directory in the root, following
// symlinks as the container would. A missing path is not an error.
func (r *Root) IsDir(p string) (bool, error) {
	f, err := pathrs.OpenatInRoot(r.dir, Clean(p))
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return false, nil
		}
		return false, fmt.Errorf("looking up %s in %s: %w", p, r.path, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false, fmt.Errorf("looking up %s in %s: %w", p, r.path, err)
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
}

// ReadFile returns the contents of the regular file p in the root, following
// symlinks as the container would. Files of more than 16 MiB, and anything
// but a regular file, are refused.
func (r *Root) ReadFile(p string) ([]byte, error) {
	h, err := pathrs.OpenatInRoot(r.dir, Clean(p))
	if err != nil {
		return nil, fmt.Errorf("opening %s in %s: %w", p, r.path, err)
	}
	defer h.Close()
	// O_NONBLOCK: a FIFO planted in the image must not hang the reader.
	f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("opening %s in %s: %w", p, r.path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s in %s: %w", p, r.path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("reading %s in %s: not a regular file (%s)", p, r.path, fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxReadFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s in %s: %w", p, r.path, err)
	}
	if len(data) > maxReadFile {
		return nil, fmt.Errorf("reading %s in %s: larger than %d bytes", p, r.path, maxReadFile)
	}
	return data, nil
}

// mkdirAll makes the directory p in the root and the missing directories
// above it (mode 0755 before the umask), and returns a handle to it.
// Symlinks on the way are followed, confined. created says whether p itself
// was missing.
func (r *Root) mkdirAll(p string) (dir *os.File, created bool, err error) {
	p = Clean(p)
	existed, err := r.IsDir(p)
	if err != nil {
		return nil, false, err
	}
	dir, err = pathrs.MkdirAllHandle(r.dir, p, 0o755)
	if err != nil {
		return nil, false, fmt.Errorf("making directory %s in %s: %w", p, r.path, err)
	}
	return dir, !existed, nil
}

// parent opens the directory holding p, making missing directories when
// create is set, and returns it with p's last component. p must not be "/".
func (r *Root) parent(p string, create bool) (*os.File, string, error) {
	p = Clean(p)
	if p == "/" {
		return nil, "", fmt.Errorf("the root of %s has no parent", r.path)
	}
	dir, base := path.Split(p)
	var (
		f   *os.File
		err error
	)
	if create {
		f, err = pathrs.MkdirAllHandle(r.dir, dir, 0o755)
	} else {
		f, err = pathrs.OpenatInRoot(r.dir, dir)
	}
	if err != nil {
		return nil, "", fmt.Errorf("opening directory %s in %s: %w", dir, r.path, err)
	}
	return f, base, nil
}

// makeRoom removes what is at name in dir so that something new can be made
// there. An existing directory is kept when keepDir is set, and its
// existence reported; otherwise it is removed with all it holds.
func makeRoom(dir *os.File, name string, keepDir bool) (isDir bool, err error) {
	var st unix.Stat_t
	err = unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if keepDir {
			return true, nil
		}
		return false, removeAllAt(int(dir.Fd()), name)
	}
	return false, unix.Unlinkat(int(dir.Fd()), name, 0)
}

// removeAllAt removes name in the directory dirfd and, when it is a
// directory, everything under it. Symlinks are removed, never followed.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return err
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	if err != nil {
		d.Close()
		return err
	}
	for _, n := range names {
		if err := removeAllAt(fd, n); err != nil {
			d.Close()
			return err
		}
	}
	if err := d.Close(); err != nil {
		return err
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}
