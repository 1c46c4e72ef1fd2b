package copier

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Owner is a numeric owner.
type Owner struct {
	// UID is the user ID.
	UID int
	// GID is the group ID.
	GID int
}

// Options say how items are written. The zero value keeps the owners and
// modes the source gives.
type Options struct {
	// Owner, when non-nil, owns every item written; nil keeps the owner the
	// source gives (the host file's, or the archive entry's).
	Owner *Owner
	// Mode, when non-nil, holds the permission bits, setuid, setgid and
	// sticky included (07777 at most), given to every item written but
	// symlinks; nil keeps the source's.
	Mode *uint32
}

// xattrPAXPrefix starts the PAX records that carry extended attributes.
const xattrPAXPrefix = "SCHILY.xattr."

// skippedXattrs are never copied: an SELinux label belongs to the host that
// wrote the file, not to the image.
var skippedXattrs = map[string]bool{"security.selinux": true}

// writer writes items into a root, and sets the times of the directories
// it wrote last, once nothing more is written into them.
type writer struct {
	r        *Root
	o        Options
	dirTimes []dirTime
}

// dirTime is a directory whose times are set at the end: through f when it
// is set (the writer owns f), else at path, without following it.
type dirTime struct {
	path         string
	f            *os.File
	atime, mtime time.Time
}

// put writes the item hdr describes at p, a path in the root. body supplies
// a regular file's contents. For a hard link hdr.Linkname is the path in the
// root of its target. Missing parent directories are made. Whatever is at
// p is removed first (a directory with all it holds), except that a
// directory written over a directory keeps it and only sets its metadata.
func (w *writer) put(p string, hdr *tar.Header, body io.Reader) error {
	p = Clean(p)
	if p == "/" {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("writing %s: the root can only be a directory", p)
		}
		f, err := pathrs.Reopen(w.r.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
		if err != nil {
			return fmt.Errorf("opening the root %s: %w", w.r.path, err)
		}
		return w.applyDir(f, p, hdr)
	}
	if strings.HasPrefix(path.Base(p), WhiteoutPrefix) {
		return fmt.Errorf("writing %s: %w", p, ErrReservedName)
	}
	dir, base, err := w.r.parent(p, true)
	if err != nil {
		return err
	}
	defer dir.Close()
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = w.putDir(dir, base, p, hdr)
	case tar.TypeReg, tar.TypeGNUSparse:
		err = w.putFile(dir, base, p, hdr, body)
	case tar.TypeSymlink:
		err = w.putSymlink(dir, base, p, hdr)
	case tar.TypeLink:
		err = w.putLink(dir, base, p, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		err = w.putNode(dir, base, p, hdr)
	default:
		logrus.Debugf("skipping %s in %s: tar entry type %q is not a file", p, w.r.path, hdr.Typeflag)
		return nil
	}
	if err != nil {
		return fmt.Errorf("writing %s in %s: %w", p, w.r.path, err)
	}
	return nil
}

func (w *writer) putFile(dir *os.File, base, p string, hdr *tar.Header, body io.Reader) (err error) {
	if _, err := makeRoom(dir, base, false); err != nil {
		return err
	}
	fd, err := unix.Openat(int(dir.Fd()), base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), p)
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if body != nil {
		if _, err := io.Copy(f, body); err != nil {
			return err
		}
	}
	if err := w.applyFd(f, hdr); err != nil {
		return err
	}
	return setTimes(int(dir.Fd()), base, hdr.AccessTime, hdr.ModTime, unix.AT_SYMLINK_NOFOLLOW)
}

func (w *writer) putDir(dir *os.File, base, p string, hdr *tar.Header) error {
	existed, err := makeRoom(dir, base, true)
	if err != nil {
		return err
	}
	if !existed {
		if err := unix.Mkdirat(int(dir.Fd()), base, 0o700); err != nil {
			return err
		}
	}
	fd, err := unix.Openat(int(dir.Fd()), base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), p)
	err = w.applyFd(f, hdr)
	if cerr := f.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	w.dirTimes = append(w.dirTimes, dirTime{path: p, atime: hdr.AccessTime, mtime: hdr.ModTime})
	return nil
}

// applyDir sets hdr's metadata on the open directory f (a destination that
// may have been reached through symlinks) and takes f over: it is closed by
// [writer.finish].
func (w *writer) applyDir(f *os.File, p string, hdr *tar.Header) error {
	if err := w.applyFd(f, hdr); err != nil {
		f.Close()
		return fmt.Errorf("setting the metadata of %s in %s: %w", p, w.r.path, err)
	}
	w.dirTimes = append(w.dirTimes, dirTime{path: p, f: f, atime: hdr.AccessTime, mtime: hdr.ModTime})
	return nil
}

func (w *writer) putSymlink(dir *os.File, base, p string, hdr *tar.Header) error {
	if _, err := makeRoom(dir, base, false); err != nil {
		return err
	}
	// The target is stored as it is: it is only ever followed confined.
	if err := unix.Symlinkat(hdr.Linkname, int(dir.Fd()), base); err != nil {
		return err
	}
	return w.applyAt(dir, base, hdr, true)
}

func (w *writer) putLink(dir *os.File, base, p string, hdr *tar.Header) error {
	target := Clean(hdr.Linkname)
	if target == p {
		return nil
	}
	if target == "/" {
		return fmt.Errorf("hard link to the root directory")
	}
	tdir, tbase, err := w.r.parent(target, false)
	if err != nil {
		return fmt.Errorf("hard link to %s: %w", target, err)
	}
	defer tdir.Close()
	if _, err := makeRoom(dir, base, false); err != nil {
		return err
	}
	// No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
	if err := unix.Linkat(int(tdir.Fd()), tbase, int(dir.Fd()), base, 0); err != nil {
		return fmt.Errorf("hard link to %s: %w", target, err)
	}
	return nil
}

func (w *writer) putNode(dir *os.File, base, p string, hdr *tar.Header) error {
	if _, err := makeRoom(dir, base, false); err != nil {
		return err
	}
	var kind uint32
	switch hdr.Typeflag {
	case tar.TypeChar:
		kind = unix.S_IFCHR
	case tar.TypeBlock:
		kind = unix.S_IFBLK
	default:
		kind = unix.S_IFIFO
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := unix.Mknodat(int(dir.Fd()), base, kind|0o600, int(dev)); err != nil {
		if kind != unix.S_IFIFO && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)) {
			logrus.Warnf("skipping device %s in %s: %v", p, w.r.path, err)
			return nil
		}
		return err
	}
	return w.applyAt(dir, base, hdr, false)
}

// applyFd sets the owner, mode and extended attributes hdr gives (as the
// options change them) on the open file or directory f.
func (w *writer) applyFd(f *os.File, hdr *tar.Header) error {
	fd := int(f.Fd())
	uid, gid := w.owner(hdr)
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return fmt.Errorf("chown %d:%d: %w", uid, gid, err)
	}
	// After chown, which clears the setuid and setgid bits.
	mode := w.mode(hdr)
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod %04o: %w", mode, err)
	}
	for name, value := range xattrs(hdr) {
		if err := unix.Fsetxattr(fd, name, []byte(value), 0); err != nil {
			if xattrUnsupported(err, false) {
				logrus.Debugf("not setting extended attribute %s on %s: %v", name, f.Name(), err)
				continue
			}
			return fmt.Errorf("setting extended attribute %s: %w", name, err)
		}
	}
	return nil
}

// applyAt sets hdr's owner, mode (unless the item is a symlink), extended
// attributes and times on name in dir, without following it.
func (w *writer) applyAt(dir *os.File, name string, hdr *tar.Header, symlink bool) error {
	dirfd := int(dir.Fd())
	uid, gid := w.owner(hdr)
	if err := unix.Fchownat(dirfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %d:%d: %w", uid, gid, err)
	}
	if !symlink {
		// The item was just made by mknod, so it is no symlink to follow.
		mode := w.mode(hdr)
		if err := unix.Fchmodat(dirfd, name, mode, 0); err != nil {
			return fmt.Errorf("chmod %04o: %w", mode, err)
		}
	}
	if attrs := xattrs(hdr); len(attrs) > 0 {
		// Through the directory's handle, so that the path can't be
		// redirected; the l-call does not follow the last component.
		procPath := fmt.Sprintf("/proc/self/fd/%d/%s", dirfd, name)
		for k, v := range attrs {
			if err := unix.Lsetxattr(procPath, k, []byte(v), 0); err != nil {
				if xattrUnsupported(err, symlink) {
					logrus.Debugf("not setting extended attribute %s on %s: %v", k, name, err)
					continue
				}
				return fmt.Errorf("setting extended attribute %s: %w", k, err)
			}
		}
	}
	return setTimes(dirfd, name, hdr.AccessTime, hdr.ModTime, unix.AT_SYMLINK_NOFOLLOW)
}

// xattrUnsupported reports errors that mean the store can't hold an
// attribute: no xattr support, or (on a symlink) no user.* attributes.
func xattrUnsupported(err error, symlink bool) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) || (symlink && errors.Is(err, unix.EPERM))
}

func (w *writer) owner(hdr *tar.Header) (int, int) {
	if w.o.Owner != nil {
		return w.o.Owner.UID, w.o.Owner.GID
	}
	return hdr.Uid, hdr.Gid
}

func (w *writer) mode(hdr *tar.Header) uint32 {
	if w.o.Mode != nil {
		return *w.o.Mode & 0o7777
	}
	return uint32(hdr.Mode) & 0o7777
}

// xattrs returns the extended attributes hdr carries, less those never
// copied.
func xattrs(hdr *tar.Header) map[string]string {
	var out map[string]string
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, xattrPAXPrefix)
		if !ok || skippedXattrs[name] {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = v
	}
	return out
}

// setTimes sets the access and modification times of name in dirfd. A zero
// modification time leaves both as they are; a zero access time takes the
// modification time.
func setTimes(dirfd int, name string, atime, mtime time.Time, flags int) error {
	if mtime.IsZero() {
		return nil
	}
	if atime.IsZero() {
		atime = mtime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(dirfd, name, ts, flags); err != nil {
		return fmt.Errorf("setting times: %w", err)
	}
	return nil
}

// finish sets the times of the directories written, deepest last written
// first, and releases the handles the writer holds. It returns the first
// error; the handles are released in any case.
func (w *writer) finish() error {
	var first error
	for i := len(w.dirTimes) - 1; i >= 0; i-- {
		dt := w.dirTimes[i]
		var err error
		if dt.f != nil {
			err = setTimes(int(dt.f.Fd()), ".", dt.atime, dt.mtime, 0)
			if cerr := dt.f.Close(); err == nil {
				err = cerr
			}
		} else if first == nil {
			err = w.setTimesAt(dt)
		}
		if err != nil && first == nil {
			first = fmt.Errorf("setting the times of %s in %s: %w", dt.path, w.r.path, err)
		}
	}
	w.dirTimes = nil
	return first
}

func (w *writer) setTimesAt(dt dirTime) error {
	dir, base, err := w.r.parent(dt.path, false)
	if err != nil {
		return err
	}
	defer dir.Close()
	return setTimes(int(dir.Fd()), base, dt.atime, dt.mtime, unix.AT_SYMLINK_NOFOLLOW)
}
