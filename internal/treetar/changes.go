package treetar

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"go.podman.io/storage/pkg/archive"
	"go.podman.io/storage/pkg/idtools"
	"golang.org/x/sys/unix"
)

// ChangesOptions say how [Changes] compares two trees. The zero value
// compares them as they are on disk.
type ChangesOptions struct {
	// NewIDs and OldIDs map each tree's owners (host IDs) back to the
	// container's before they are compared. Nil keeps them.
	NewIDs, OldIDs *idtools.IDMappings
	// ChangedSince, when not zero, also counts as modified every regular
	// file of the new tree whose ctime is later, whatever its size and
	// mtime say (see the bricklayer package's changed_since.go).
	ChangedSince time.Time
}

// Changes lists, sorted by path, how the tree under newDir differs from
// the tree under oldDir: the changes containers/storage's
// archive.ChangesDirs finds (which the vfs driver's diff is made from),
// found by a walk through file descriptors, as [Write] makes its own.
//
// A file is modified when its type, mode, owner (mapped), device number,
// mtime (whole seconds when either side has none finer), size (not for a
// directory), security.capability (mapped), user.* attributes or link
// target differ; a directory is modified when anything under it changed,
// so that its entry comes with them; an added directory brings everything
// under it; a removed one is listed alone. A name that is the same inode in
// both trees is not compared. Files removed while the trees are read are
// left out.
func Changes(ctx context.Context, newDir, oldDir string, opts ChangesOptions) ([]archive.Change, error) {
	newFd, err := unix.Open(newDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", newDir, err)
	}
	defer unix.Close(newFd)
	oldFd, err := unix.Open(oldDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", oldDir, err)
	}
	defer unix.Close(oldFd)
	d := &differ{
		ctx:     ctx,
		opts:    opts,
		roots:   [2]string{newDir, oldDir},
		attrs:   newAttrReader(),
		dirents: make([]byte, direntBufferSize),
	}
	for i, ids := range []*idtools.IDMappings{opts.NewIDs, opts.OldIDs} {
		if ids != nil && !ids.Empty() {
			d.ids[i] = ids
		}
	}
	if err := d.children(newFd, oldFd, "/"); err != nil {
		return nil, err
	}
	slices.SortFunc(d.changes, func(a, b archive.Change) int { return strings.Compare(a.Path, b.Path) })
	return d.changes, nil
}

const (
	newTree = 0
	oldTree = 1
)

type differ struct {
	ctx     context.Context
	opts    ChangesOptions
	roots   [2]string              // newTree, oldTree
	ids     [2]*idtools.IDMappings // nil: owners kept
	attrs   *attrReader
	dirents []byte
	changes []archive.Change
}

// fail names the file at p (from "/") of tree i in err.
func (d *differ) fail(i int, action, p string, err error) error {
	return fmt.Errorf("%s %q in %s: %w", action, p, d.roots[i], err)
}

func (d *differ) add(p string, kind archive.ChangeType) {
	d.changes = append(d.changes, archive.Change{Path: p, Kind: kind})
}

// dirLike is containers/storage's test for a directory in a comparison,
// which block devices and sockets pass too: a file that passes it has its
// old children compared with its own (none, unless it is a directory).
func dirLike(mode uint32) bool { return mode&unix.S_IFDIR != 0 }

// isDir reports whether mode is a directory's.
func isDir(mode uint32) bool { return mode&unix.S_IFMT == unix.S_IFDIR }

// children compares the directory dir (from "/"), open as newFd in the new
// tree and as oldFd in the old one (-1 when the old tree has no directory
// there).
func (d *differ) children(newFd, oldFd int, dir string) error {
	if err := d.ctx.Err(); err != nil {
		return err
	}
	var newNames, oldNames []string
	var err error
	if newFd >= 0 {
		if newNames, err = readNames(newFd, d.dirents); err != nil {
			return d.fail(newTree, "listing", dir, err)
		}
	}
	if oldFd >= 0 {
		if oldNames, err = readNames(oldFd, d.dirents); err != nil {
			return d.fail(oldTree, "listing", dir, err)
		}
	}
	// Both lists are sorted: merge them.
	for len(newNames) > 0 || len(oldNames) > 0 {
		var name string
		inNew, inOld := false, false
		switch {
		case len(oldNames) == 0 || len(newNames) > 0 && newNames[0] < oldNames[0]:
			name, inNew, newNames = newNames[0], true, newNames[1:]
		case len(newNames) == 0 || oldNames[0] < newNames[0]:
			name, inOld, oldNames = oldNames[0], true, oldNames[1:]
		default:
			name, inNew, inOld, newNames, oldNames = newNames[0], true, true, newNames[1:], oldNames[1:]
		}
		nfd, ofd := newFd, oldFd
		if !inNew {
			nfd = -1
		}
		if !inOld {
			ofd = -1
		}
		if err := d.child(nfd, ofd, dir, name); err != nil {
			return err
		}
	}
	return nil
}

// lstat stats name in the directory open as dirfd (-1: none) of tree i,
// and reports whether it is there.
func (d *differ) lstat(i, dirfd int, p, name string, st *unix.Stat_t) (bool, error) {
	if dirfd < 0 {
		return false, nil
	}
	err := unix.Fstatat(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, d.fail(i, "reading", p, err)
	}
	return true, nil
}

// openDir opens the directory name in the directory open as dirfd of tree
// i, or returns -1 if it is gone.
func (d *differ) openDir(i, dirfd int, p, name string, st *unix.Stat_t) (int, error) {
	fd, err := openSame(dirfd, name, st, unix.O_DIRECTORY)
	if errors.Is(err, unix.ENOENT) {
		return -1, nil
	}
	if err != nil {
		return -1, d.fail(i, "opening", p, err)
	}
	return fd, nil
}

// child compares name in the directory dir, open as newFd in the new tree
// and as oldFd in the old one (-1 where the name is not listed).
func (d *differ) child(newFd, oldFd int, dir, name string) error {
	p := path.Join(dir, name)
	var nst, ost unix.Stat_t
	inNew, err := d.lstat(newTree, newFd, p, name, &nst)
	if err != nil {
		return err
	}
	inOld, err := d.lstat(oldTree, oldFd, p, name, &ost)
	if err != nil {
		return err
	}
	switch {
	case !inNew && !inOld:
		return nil
	case !inNew:
		d.add(p, archive.ChangeDelete)
		return nil
	case !inOld:
		return d.added(newFd, p, name, &nst)
	case nst.Dev == ost.Dev && nst.Ino == ost.Ino:
		return nil // the same file in both trees
	}

	mark := len(d.changes)
	modified, err := d.differs(newFd, oldFd, p, name, &nst, &ost)
	if err != nil {
		return err
	}
	if modified {
		d.add(p, archive.ChangeModify)
	}
	if !dirLike(nst.Mode) {
		return nil
	}
	sub := -1
	if isDir(nst.Mode) {
		if sub, err = d.openDir(newTree, newFd, p, name, &nst); err != nil {
			return err
		}
		if sub < 0 {
			return nil
		}
		defer unix.Close(sub)
	}
	oldSub := -1
	if isDir(ost.Mode) {
		if oldSub, err = d.openDir(oldTree, oldFd, p, name, &ost); err != nil {
			return err
		}
		if oldSub >= 0 {
			defer unix.Close(oldSub)
		}
	}
	if sub >= 0 {
		err = d.children(sub, oldSub, p)
	} else if oldSub >= 0 {
		// A block device or a socket where a directory was: its old
		// children are gone.
		err = d.children(-1, oldSub, p)
	}
	if err != nil {
		return err
	}
	if len(d.changes) > mark && !modified {
		// Something under it changed: its entry goes with them (the list
		// is sorted at the end).
		d.add(p, archive.ChangeModify)
	}
	return nil
}

// added lists p, named name in the directory open as dirfd of the new
// tree, as added, and everything under it when it is a directory.
func (d *differ) added(dirfd int, p, name string, st *unix.Stat_t) error {
	d.add(p, archive.ChangeAdd)
	if !isDir(st.Mode) {
		return nil
	}
	fd, err := d.openDir(newTree, dirfd, p, name, st)
	if err != nil || fd < 0 {
		return err
	}
	defer unix.Close(fd)
	names, err := readNames(fd, d.dirents)
	if err != nil {
		return d.fail(newTree, "listing", p, err)
	}
	for _, n := range names {
		var cst unix.Stat_t
		ok, err := d.lstat(newTree, fd, path.Join(p, n), n, &cst)
		if err != nil {
			return err
		}
		if ok {
			if err := d.added(fd, path.Join(p, n), n, &cst); err != nil {
				return err
			}
		}
	}
	return nil
}

// differs reports whether p, named name in the directories open as newFd
// and oldFd, differs between the trees, where nst and ost are its stats.
func (d *differ) differs(newFd, oldFd int, p, name string, nst, ost *unix.Stat_t) (bool, error) {
	nu, ng, ou, og := int(nst.Uid), int(nst.Gid), int(ost.Uid), int(ost.Gid)
	if u, g, err := toContainer(d.ids[newTree], nu, ng); err == nil {
		nu, ng = u, g
		if u, g, err := toContainer(d.ids[oldTree], ou, og); err == nil {
			ou, og = u, g
		}
	}
	if nst.Mode != ost.Mode || nu != ou || ng != og || nst.Rdev != ost.Rdev ||
		!sameTime(nst.Mtim, ost.Mtim) ||
		ost.Mode&unix.S_IFDIR != unix.S_IFDIR && nst.Size != ost.Size {
		return true, nil
	}
	if !d.opts.ChangedSince.IsZero() && nst.Mode&unix.S_IFMT == unix.S_IFREG &&
		time.Unix(nst.Ctim.Sec, nst.Ctim.Nsec).After(d.opts.ChangedSince) {
		return true, nil
	}
	var attrs [2]map[string]string
	var caps [2]string
	var targets [2]string
	for i, fd := range []int{newFd, oldFd} {
		a, err := d.attrs.read(-1, fd, name, path.Join(d.roots[i], p), func(n string) bool {
			return n == xattrCap || strings.HasPrefix(n, xattrUser)
		})
		if err != nil {
			return false, d.fail(i, "reading the extended attributes of", p, err)
		}
		if c, ok := a[xattrCap]; ok {
			v, err := containerCapability(d.ids[i], []byte(c))
			if err != nil {
				return false, d.fail(i, "reading the extended attributes of", p, err)
			}
			caps[i] = string(v)
			delete(a, xattrCap)
		}
		attrs[i] = a
		if []*unix.Stat_t{nst, ost}[i].Mode&unix.S_IFMT == unix.S_IFLNK {
			if targets[i], err = readlinkat(fd, name); err != nil && !errors.Is(err, unix.ENOENT) {
				return false, d.fail(i, "reading the link", p, err)
			}
		}
	}
	return caps[0] != caps[1] || targets[0] != targets[1] || !maps.Equal(attrs[0], attrs[1]), nil
}

// sameTime is containers/storage's comparison of mtimes: equal, or in the
// same second when either has no finer part (a tar stream's whole
// seconds).
func sameTime(a, b unix.Timespec) bool {
	return a.Sec == b.Sec && (a.Nsec == b.Nsec || a.Nsec == 0 || b.Nsec == 0)
}

// toContainer maps an owner with ids (nil: kept).
func toContainer(ids *idtools.IDMappings, uid, gid int) (int, int, error) {
	if ids == nil {
		return uid, gid, nil
	}
	return ids.ToContainer(idtools.IDPair{UID: uid, GID: gid})
}
