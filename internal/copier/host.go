package copier

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// CopyHost copies the host file or directory src to dst, a path in the
// root. A symlink given as src is followed; symlinks inside a directory are
// copied as symlinks.
//
// A directory's contents are copied into dst, which is made when missing
// and then takes src's metadata; an existing dst keeps its own. Anything
// else is written at dst itself, replacing what is there. Modes, symlinks,
// hard links within src, extended attributes (where the root's file system
// takes them; security.selinux never) and times are kept, and owners as
// opts says. Sockets are skipped.
//
// On error, what was written so far stays.
func (r *Root) CopyHost(ctx context.Context, src, dst string, opts Options) (err error) {
	fi, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	w := &writer{r: r, o: opts}
	defer func() {
		if ferr := w.finish(); ferr != nil && err == nil {
			err = ferr
		}
	}()
	// What src names, so that its extended attributes are read from it
	// rather than from a symlink to it.
	real, err := filepath.EvalSymlinks(src)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if !fi.IsDir() {
		return w.putHost(real, Clean(dst), fi)
	}
	top, created, err := r.mkdirAll(dst)
	if err != nil {
		return err
	}
	if created {
		hdr, err := hostHeader(real, fi)
		if err != nil {
			top.Close()
			return err
		}
		if err := w.applyDir(top, Clean(dst), hdr); err != nil {
			return err
		}
	} else {
		top.Close()
	}
	links := map[fileID]string{}
	return filepath.WalkDir(real, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("copying %s: %w", p, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == real {
			return nil
		}
		rel, err := filepath.Rel(real, p)
		if err != nil {
			return fmt.Errorf("copying %s: %w", p, err)
		}
		target := path.Join(Clean(dst), filepath.ToSlash(rel))
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("copying %s: %w", p, err)
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && !info.IsDir() && uint64(st.Nlink) > 1 {
			id := fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}
			if first, seen := links[id]; seen {
				return w.put(target, &tar.Header{Typeflag: tar.TypeLink, Linkname: first}, nil)
			}
			links[id] = target
		}
		return w.putHost(p, target, info)
	})
}

// maxXattrSize bounds the buffers for extended attributes; Linux allows
// 64 KiB for a value and for a list of names.
const maxXattrSize = 1 << 20

// fileID names an inode on the host.
type fileID struct {
	dev, ino uint64
}

// putHost writes the host item p, described by fi, at target.
func (w *writer) putHost(p, target string, fi fs.FileInfo) error {
	if fi.Mode().Type() == fs.ModeSocket {
		logrus.Debugf("skipping socket %s", p)
		return nil
	}
	hdr, err := hostHeader(p, fi)
	if err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeReg {
		return w.put(target, hdr, nil)
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("copying %s: %w", p, err)
	}
	defer f.Close()
	return w.put(target, hdr, f)
}

// TarMode is a tar header's mode for m: its permission bits and setuid,
// setgid and sticky bits.
func TarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// hostHeader describes the host item p, whose (l)stat result is fi, as a
// tar header with its extended attributes in PAX records.
func hostHeader(p string, fi fs.FileInfo) (*tar.Header, error) {
	hdr := &tar.Header{Name: p, ModTime: fi.ModTime(), Mode: TarMode(fi.Mode())}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("copying %s: no owner information", p)
	}
	hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
	hdr.AccessTime = time.Unix(st.Atim.Unix())
	switch fi.Mode().Type() {
	case 0:
		hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
	case fs.ModeDir:
		hdr.Typeflag = tar.TypeDir
	case fs.ModeSymlink:
		target, err := os.Readlink(p)
		if err != nil {
			return nil, fmt.Errorf("reading symlink %s: %w", p, err)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case fs.ModeDevice | fs.ModeCharDevice:
		hdr.Typeflag = tar.TypeChar
	case fs.ModeDevice:
		hdr.Typeflag = tar.TypeBlock
	case fs.ModeNamedPipe:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil, fmt.Errorf("copying %s: unsupported file type %s", p, fi.Mode().Type())
	}
	if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(uint64(st.Rdev))), int64(unix.Minor(uint64(st.Rdev)))
	}
	attrs, err := hostXattrs(p)
	if err != nil {
		return nil, err
	}
	for k, v := range attrs {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[xattrPAXPrefix+k] = v
	}
	return hdr, nil
}

// hostXattrs reads the extended attributes of the host item p, without
// following it. A file system without them gives none.
func hostXattrs(p string) (map[string]string, error) {
	buf := make([]byte, 1024)
	var n int
	for {
		var err error
		n, err = unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) && len(buf) < maxXattrSize {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing the extended attributes of %s: %w", p, err)
		}
		break
	}
	var out map[string]string
	for _, name := range splitNul(buf[:n]) {
		if skippedXattrs[name] {
			continue
		}
		value, err := hostXattr(p, name)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = string(value)
	}
	return out, nil
}

func hostXattr(p, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) && len(buf) < maxXattrSize {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading extended attribute %s of %s: %w", name, p, err)
		}
		return buf[:n], nil
	}
}

func splitNul(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != 0 {
			i++
		}
		if i > 0 {
			out = append(out, string(b[:i]))
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return out
}
