package treetar

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"go.podman.io/storage/pkg/idtools"
	"golang.org/x/sys/unix"
)

// Extended attributes, as containers/storage reads them into a layer (as
// PAX records) and compares them between trees.
const (
	paxXattr      = "SCHILY.xattr."
	xattrCap      = "security.capability"
	xattrIMA      = "security.ima"
	xattrUser     = "user."
	xattrOverlay  = "user.overlay."
	xattrListSize = 64 << 10 // XATTR_LIST_MAX
)

// streamedXattr reports whether a tar stream keeps the attribute.
func streamedXattr(name string) bool {
	return name == xattrCap || name == xattrIMA ||
		strings.HasPrefix(name, xattrUser) && !strings.HasPrefix(name, xattrOverlay)
}

// attrReader reads a file's extended attributes through one buffer.
type attrReader struct {
	buf []byte
	// procFds is whether /proc/self/fd can reach a file through its
	// directory's file descriptor.
	procFds bool
}

func newAttrReader() *attrReader {
	_, err := os.Stat("/proc/self/fd")
	return &attrReader{buf: make([]byte, 1024), procFds: err == nil}
}

// read returns the attributes keep selects of the file open as fd, or,
// when fd < 0, of name in the directory open as dirfd: through /proc, so
// that no path under the root is resolved again (no file descriptor reads
// the attributes of a symbolic link itself), else through fullPath. A
// filesystem without extended attributes gives none.
func (a *attrReader) read(fd, dirfd int, name, fullPath string, keep func(string) bool) (map[string]string, error) {
	list := func(buf []byte) (int, error) { return unix.Flistxattr(fd, buf) }
	get := func(attr string, buf []byte) (int, error) { return unix.Fgetxattr(fd, attr, buf) }
	if fd < 0 {
		p := fullPath
		if a.procFds {
			p = "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
		}
		list = func(buf []byte) (int, error) { return unix.Llistxattr(p, buf) }
		get = func(attr string, buf []byte) (int, error) { return unix.Lgetxattr(p, attr, buf) }
	}
	names, err := a.call(list)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	var out map[string]string
	for attr := range strings.SplitSeq(strings.TrimSuffix(string(names), "\x00"), "\x00") {
		if !keep(attr) {
			continue
		}
		value, err := a.call(func(buf []byte) (int, error) { return get(attr, buf) })
		if errors.Is(err, unix.ENODATA) {
			continue // removed since it was listed
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", attr, err)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[attr] = string(value)
	}
	return out, nil
}

// call runs an extended attribute call into a.buf, growing it while the
// result does not fit, and returns a copy of the result.
func (a *attrReader) call(fn func([]byte) (int, error)) ([]byte, error) {
	for {
		n, err := fn(a.buf)
		switch {
		case errors.Is(err, unix.ERANGE) && len(a.buf) < xattrListSize:
			a.buf = make([]byte, 2*len(a.buf))
			continue
		case errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, err
		}
		return slices.Clone(a.buf[:n]), nil
	}
}

// paxXattrs returns the PAX records of the streamed extended attributes of
// the file open as fd, or, when fd < 0 (a symbolic link, a device or a
// FIFO, which are not opened), of name in the directory open as dirfd. rel
// is its name relative to the root.
func (t *treeWriter) paxXattrs(fd, dirfd int, name, rel string) (map[string]string, error) {
	attrs, err := t.attrs.read(fd, dirfd, name, path.Join(t.root, rel), streamedXattr)
	if err != nil || len(attrs) == 0 {
		return nil, err
	}
	pax := make(map[string]string, len(attrs))
	for attr, value := range attrs {
		if attr == xattrCap {
			v, err := containerCapability(t.ids, []byte(value))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", attr, err)
			}
			value = string(v)
		}
		pax[paxXattr+attr] = value
	}
	return pax, nil
}

// VFS capability values (include/uapi/linux/capability.h): a v3 value
// carries the user ID, in the ID space of the filesystem, that is root for
// the capabilities.
const (
	capRevisionMask = 0xff000000
	capRevision2    = 0x02000000
	capRevision3    = 0x03000000
	capSizeV2       = 20
	capSizeV3       = 24
)

// containerCapability rewrites the root ID of a v3 security.capability
// value from the host's ID space into the container's, as ids map it (nil:
// kept). A value whose root is the container's root becomes a v2 value, as
// the kernel shows it inside the container.
func containerCapability(ids *idtools.IDMappings, v []byte) ([]byte, error) {
	if ids == nil || len(v) != capSizeV3 {
		return v, nil
	}
	magic := binary.LittleEndian.Uint32(v)
	if magic&capRevisionMask != capRevision3 {
		return v, nil
	}
	root, err := idtools.RawToContainer(int(binary.LittleEndian.Uint32(v[capSizeV2:])), ids.UIDs())
	if err != nil {
		return nil, err
	}
	if root == 0 {
		out := slices.Clone(v[:capSizeV2])
		binary.LittleEndian.PutUint32(out, magic&^capRevisionMask|capRevision2)
		return out, nil
	}
	out := slices.Clone(v)
	binary.LittleEndian.PutUint32(out[capSizeV2:], uint32(root))
	return out, nil
}
