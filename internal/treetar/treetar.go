// Package treetar reads layers' directory trees through file descriptors:
// [Write] writes a tree as a tar stream (the diff of a layer that has no
// parent, an overlay layer's diff from its upper directory ([Overlay]), or
// the whole tree of an image squashed), and [Changes] lists how
// one tree differs from another (a layer's against its parent's, where the
// vfs driver, or the overlay driver without native diffs, would compare
// them).
//
// The stream holds what containers/storage's archive.TarWithOptions would
// write for the same tree, read back through [tarnorm]: the same entries in
// the same order (lexical, a directory before its contents), the same
// extended attributes (security.capability, security.ima and user.*, but
// not user.overlay.*), hard links to the first name met, sockets left out,
// owners mapped back into the container's ID space. It differs in three
// ways:
//
//   - It is about two and a half times as fast (BenchmarkTar: 0.19 s
//     against 0.49-0.53 s on a 204 MB Debian root filesystem in the page
//     cache). Every file is found through its
//     directory's file descriptor (fstatat, openat), and its extended
//     attributes read through its own (flistxattr), where
//     containers/storage resolves a path through os.Root several times per
//     file and makes four extended attribute calls on each.
//   - Names need not be valid UTF-8: io/fs, which containers/storage walks
//     through, leaves out the contents of such a directory.
//   - A file it cannot read fails the stream, naming the file, where
//     containers/storage logs it and leaves it out; only a file removed
//     while the tree is read is left out.
//
// Nothing under the root is ever followed out of it: symbolic links are
// written as links, every file is opened relative to its directory with
// O_NOFOLLOW, and a file that changes type or inode between its stat and
// its open fails the stream.
package treetar

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/bricklayer/bricklayer/internal/tarnorm"
	"github.com/sirupsen/logrus"
	"go.podman.io/storage/pkg/idtools"
	"golang.org/x/sys/unix"
)

// Options say how a tree is written. The zero value keeps owners as they
// are on disk.
type Options struct {
	// IDMappings maps the owners on disk (host IDs) back to the
	// container's. Nil or empty keeps them.
	IDMappings *idtools.IDMappings
	// Normalize, when set, normalises each header as it is written, as
	// tarnorm.Copy would (its Check first): the stream is then what
	// tarnorm.Copy would make of the plain one, with no second pass.
	Normalize *tarnorm.Options
	// Overlay, when set, reads the tree as an overlay layer's upper
	// directory (see [Overlay]); [Write] and [Reader] only.
	Overlay *Overlay
}

// ErrChanged: a file changed while the tree was read (it was replaced by
// another, changed type, or shrank while its contents were copied).
var ErrChanged = errors.New("file changed while it was read")

// Buffer sizes: the stream is written in large pieces, since each write
// into a pipe wakes its reader.
const (
	streamBufferSize = 256 << 10
	copyBufferSize   = 256 << 10
	direntBufferSize = 32 << 10
)

// Reader returns the tar stream of the tree under root, written by a
// goroutine as it is read. Closing the reader stops the goroutine; an
// error it meets is returned by Read.
func Reader(ctx context.Context, root string, opts Options) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(Write(ctx, pw, root, opts))
	}()
	return pr
}

// Write writes the tar stream of the tree under root (root itself left
// out) to w, and ends it. Names are relative to root, a directory's with a
// trailing slash.
func Write(ctx context.Context, w io.Writer, root string, opts Options) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", root, err)
	}
	defer unix.Close(fd)
	t, bw := newTreeWriter(ctx, w, root, opts)
	t.descend = true
	if err := t.dir(fd, ""); err != nil {
		return err
	}
	return t.end(bw)
}

// newTreeWriter returns a treeWriter of the tree under root into w
// through bw, which [treeWriter.end] flushes.
func newTreeWriter(ctx context.Context, w io.Writer, root string, opts Options) (*treeWriter, *bufio.Writer) {
	ids := opts.IDMappings
	if ids != nil && ids.Empty() {
		ids = nil
	}
	bw := bufio.NewWriterSize(w, streamBufferSize)
	return &treeWriter{
		ctx:     ctx,
		root:    root,
		ids:     ids,
		tw:      tar.NewWriter(bw),
		seen:    map[inode]linked{},
		copyBuf: make([]byte, copyBufferSize),
		dirents: make([]byte, direntBufferSize),
		attrs:   newAttrReader(),
		norm:    opts.Normalize,
		overlay: opts.Overlay,
	}, bw
}

// writeHeader writes hdr, normalised first when the stream is.
func (t *treeWriter) writeHeader(hdr *tar.Header) error {
	if t.norm != nil {
		if t.norm.Check != nil {
			if err := t.norm.Check(hdr); err != nil {
				return err
			}
		}
		tarnorm.Header(hdr, *t.norm)
	}
	return t.tw.WriteHeader(hdr)
}

// end ends the tar stream and flushes it through bw.
func (t *treeWriter) end(bw *bufio.Writer) error {
	if err := t.tw.Close(); err != nil {
		return fmt.Errorf("ending the tar stream of %s: %w", t.root, err)
	}
	return bw.Flush()
}

// Test hooks, set by tests to change the tree while it is read: each is
// called with an entry's name relative to the root, testHookStat between
// its stat and its open, testHookOpened once it is open (regular files and
// directories).
var testHookStat, testHookOpened func(rel string)

// inode identifies a file for hard link detection.
type inode struct{ dev, ino uint64 }

// linked is the first entry written for an inode with more than one name.
type linked struct {
	name string
	pax  map[string]string
}

type treeWriter struct {
	ctx     context.Context
	root    string
	ids     *idtools.IDMappings // nil: owners kept
	tw      *tar.Writer
	seen    map[inode]linked
	copyBuf []byte
	dirents []byte
	attrs   *attrReader
	// descend is whether a directory's entry brings its contents.
	descend bool
	norm    *tarnorm.Options // nil: headers written as read
	overlay *Overlay         // nil: not an overlay upper directory
}

// fail names the file at rel (relative to the root) in err.
func (t *treeWriter) fail(action, rel string, err error) error {
	return fmt.Errorf("%s %q in %s: %w", action, "/"+strings.TrimSuffix(rel, "/"), t.root, err)
}

// dir writes the entries of the directory open as fd, whose name relative
// to the root is prefix (with a trailing slash, "" for the root).
func (t *treeWriter) dir(fd int, prefix string) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	names, err := readNames(fd, t.dirents)
	if err != nil {
		return t.fail("listing", prefix, err)
	}
	for _, name := range names {
		if err := t.entry(fd, name, prefix+name); err != nil {
			return err
		}
	}
	return nil
}

// readNames lists the directory open as fd, sorted bytewise, reading
// its entries into buf.
func readNames(fd int, buf []byte) ([]string, error) {
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	slices.Sort(names)
	return names, nil
}

// entry writes the file name in the directory open as dirfd, and, for a
// directory, its contents. rel is its name relative to the root.
func (t *treeWriter) entry(dirfd int, name, rel string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			logrus.Debugf("%q in %s was removed while the tree was read", "/"+rel, t.root)
			return nil
		}
		return t.fail("reading", rel, err)
	}
	if testHookStat != nil {
		testHookStat(rel)
	}
	if t.overlay != nil && isWhiteout(&st) {
		if err := t.writeHeader(whiteoutHeader(strings.TrimSuffix(rel, name), name)); err != nil {
			return t.fail("writing the whiteout of", rel, err)
		}
		return nil
	}
	// A further name of a file met before is written as a link to the
	// first, with the first's attributes; the file is not opened again.
	key := inode{st.Dev, st.Ino}
	first, isLink := linked{}, false
	if st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink > 1 {
		first, isLink = t.seen[key]
	}
	hdr := &tar.Header{Name: rel}
	fd := -1
	defer func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	}()
	var err error
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		if !isLink {
			fd, err = openSame(dirfd, name, &st, unix.O_NONBLOCK|unix.O_NOCTTY)
			hdr.Size = st.Size
		}
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		fd, err = openSame(dirfd, name, &st, unix.O_DIRECTORY)
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname, err = readlinkat(dirfd, name)
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(st.Rdev))
		hdr.Devminor = int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFSOCK:
		// A socket cannot be held by a tar stream, nor made from one.
		logrus.Infof("leaving out %q in %s: it is a socket", "/"+rel, t.root)
		return nil
	default:
		err = fmt.Errorf("unknown file type %#o", st.Mode&unix.S_IFMT)
	}
	if errors.Is(err, unix.ENOENT) {
		logrus.Debugf("%q in %s was removed while the tree was read", "/"+rel, t.root)
		return nil
	}
	if err != nil {
		return t.fail("reading", rel, err)
	}
	if testHookOpened != nil && fd >= 0 {
		testHookOpened(rel)
	}
	// Permission and special bits, as archive/tar's FileInfoHeader
	// writes them; the time in whole seconds, as containers/storage does.
	hdr.Mode = int64(st.Mode & 0o7777)
	hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
	hdr.ModTime = time.Unix(st.Mtim.Sec, 0)

	if isLink {
		hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first.name, 0
		hdr.PAXRecords = first.pax
	} else {
		pax, err := t.paxXattrs(fd, dirfd, name, rel)
		if err != nil {
			return t.fail("reading the extended attributes of", rel, err)
		}
		hdr.PAXRecords = pax
	}
	if t.ids != nil && !strings.HasPrefix(name, tarnorm.WhiteoutPrefix) {
		uid, gid, err := t.ids.ToContainer(idtools.IDPair{UID: hdr.Uid, GID: hdr.Gid})
		if err != nil {
			return t.fail("mapping the owner of", rel, err)
		}
		hdr.Uid, hdr.Gid = uid, gid
	}
	var opaque *tar.Header
	if t.overlay != nil && hdr.Typeflag == tar.TypeDir {
		if opaque, err = t.overlay.opaqueHeader(fd, hdr); err != nil {
			return t.fail("reading", rel, err)
		}
	}
	if err := t.writeHeader(hdr); err != nil {
		return t.fail("writing the header of", rel, err)
	}
	if opaque != nil {
		if err := t.writeHeader(opaque); err != nil {
			return t.fail("writing the opaque marker of", rel, err)
		}
	}
	if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
		if err := t.copyFile(fd, hdr.Size); err != nil {
			return t.fail("copying", rel, err)
		}
	}
	if hdr.Typeflag != tar.TypeDir && hdr.Typeflag != tar.TypeLink && st.Nlink > 1 {
		t.seen[key] = linked{name: hdr.Name, pax: hdr.PAXRecords}
	}
	if hdr.Typeflag == tar.TypeDir && t.descend {
		return t.dir(fd, hdr.Name)
	}
	return nil
}

// openSame opens name in the directory open as dirfd, read-only and without
// following a symbolic link, and checks that it is still the file st
// describes; st is then refreshed from the open file.
func openSame(dirfd int, name string, st *unix.Stat_t, flags int) (int, error) {
	var fd int
	var err error
	for {
		fd, err = unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|flags, 0)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return -1, ErrChanged // replaced by a link, or no longer a directory
	}
	if err != nil {
		return -1, err
	}
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if now.Dev != st.Dev || now.Ino != st.Ino || now.Mode&unix.S_IFMT != st.Mode&unix.S_IFMT {
		unix.Close(fd)
		return -1, ErrChanged
	}
	*st = now
	return fd, nil
}

// readlinkat reads the target of the symbolic link name in the directory
// open as dirfd.
func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if errors.Is(err, unix.EINVAL) {
			return "", ErrChanged // no longer a link
		}
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// copyFile copies size bytes of the file open as fd into the tar stream. A
// file that has grown since its stat is cut at size, as its header says; one
// that has shrunk fails the copy.
func (t *treeWriter) copyFile(fd int, size int64) error {
	for size > 0 {
		buf := t.copyBuf
		if int64(len(buf)) > size {
			buf = buf[:size]
		}
		n, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: %d bytes short of its size", ErrChanged, size)
		}
		if _, err := t.tw.Write(buf[:n]); err != nil {
			return err
		}
		size -= int64(n)
	}
	return nil
}
