package bricklayer

import (
	"errors"
	"fmt"
	"os"
	"path"
	"time"

	"github.com/sirupsen/logrus"
	"go.podman.io/storage"
	"go.podman.io/storage/pkg/archive"
	"golang.org/x/sys/unix"
)

// The vfs driver keeps a container's layer as a full copy of its parent's
// tree, and finds what the container changed by comparing the two trees
// (as the overlay driver does when it cannot make its diffs natively):
// a file counts as changed when its size, mtime, mode, owner, xattrs or
// link target differ. A file rewritten with the same size and mtime (by
// cp -p, tar, rsync -t, or a build that clamps every mtime to
// SOURCE_DATE_EPOCH) is missed, and the image silently keeps the parent's
// content. Any change to a file sets its ctime, which no call can set
// back, and the copy the container's layer started as was complete before
// the store recorded the container; so a file whose ctime is later than the
// container's creation has changed since, whatever its mtime says.

// changeSweep says which layer's changes need the ctime check, and since
// when. The zero value checks nothing.
type changeSweep struct {
	layerID string
	since   time.Time
}

// sweepFor returns the check for container ctr's layer: needed only where
// the driver finds changes by comparing trees: vfs, and overlay when it
// does not make its diffs natively (with metacopy on, as Fedora's
// storage.conf sets it, or a kernel with redirect_dir). In an overlay
// mount a file not copied up keeps its lower layer's ctime, older than the
// container; a copy-up, of content or metadata, gets a new one.
func sweepFor(store storage.Store, ctr *storage.Container) changeSweep {
	if ctr.Created.IsZero() || !comparesTrees(store) {
		return changeSweep{}
	}
	return changeSweep{layerID: ctr.LayerID, since: ctr.Created}
}

// comparesTrees reports whether store's driver finds a layer's changes by
// comparing its tree with its parent's.
func comparesTrees(store storage.Store) bool {
	switch store.GraphDriverName() {
	case "vfs":
		return true
	case "overlay":
		status, err := store.Status()
		if err != nil {
			logrus.Debugf("reading the overlay driver's status: %v", err)
			return true
		}
		for _, kv := range status {
			if kv[0] == "Native Overlay Diff" {
				return kv[1] != "true"
			}
		}
		return true
	}
	return false
}

// applies reports whether the changes of layer l, against a parent, need
// the check.
func (c changeSweep) applies(l *storage.Layer) bool {
	return c.layerID != "" && l.ID == c.layerID && l.Parent != ""
}

// changedSince returns the time the check counts changes from for layer
// l, or the zero time when it does not apply to l.
func (c changeSweep) changedSince(l *storage.Layer) time.Time {
	if !c.applies(l) {
		return time.Time{}
	}
	return c.since
}

// add returns changes, which list how layer l, mounted at mp, differs from
// a layer below, with the files the check finds added when it applies to l.
func (c changeSweep) add(l *storage.Layer, mp string, changes []archive.Change) ([]archive.Change, error) {
	if !c.applies(l) {
		return changes, nil
	}
	return addChangedSince(mp, c.since, changes)
}

// addChangedSince adds to changes, which list how the tree at mp differs
// from its parent's, every regular file under mp whose ctime is later than
// since and that changes does not list yet, with its directories.
func addChangedSince(mp string, since time.Time, changes []archive.Change) ([]archive.Change, error) {
	listed := make(map[string]bool, len(changes))
	for _, c := range changes {
		listed[c.Path] = true
	}
	added := 0
	visit := func(name string, st *unix.Stat_t) {
		if !time.Unix(st.Ctim.Sec, st.Ctim.Nsec).After(since) || listed[name] {
			return
		}
		for dir := path.Dir(name); dir != "/" && !listed[dir]; dir = path.Dir(dir) {
			listed[dir] = true
			changes = append(changes, archive.Change{Path: dir, Kind: archive.ChangeModify})
		}
		listed[name] = true
		changes = append(changes, archive.Change{Path: name, Kind: archive.ChangeModify})
		added++
	}
	fd, err := unix.Open(mp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = walkRegularFiles(fd, "/", visit)
	}
	if err != nil {
		return nil, fmt.Errorf("looking for files changed since %s: %w", since.Format(time.RFC3339Nano), err)
	}
	if added > 0 {
		logrus.Debugf("%d files under %s changed with their size and mtime kept", added, mp)
	}
	return changes, nil
}

// walkRegularFiles calls visit with the path (from "/") and the lstat of
// every regular file under the directory open as fd, which it closes. It
// opens each directory relative to its parent, so paths longer than
// PATH_MAX are walked too; entries removed meanwhile are skipped, as the
// tree comparison skips them.
func walkRegularFiles(fd int, dir string, visit func(name string, st *unix.Stat_t)) error {
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", dir, err)
	}
	for _, n := range names {
		name := path.Join(dir, n)
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("%s: %w", name, err)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			visit(name, &st)
		case unix.S_IFDIR:
			sub, err := unix.Openat(fd, n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			if err != nil {
				return fmt.Errorf("opening directory %s: %w", name, err)
			}
			if err := walkRegularFiles(sub, name, visit); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitPastCtime returns once the clock that stamps ctimes on dir's
// filesystem reads later than t. The kernel stamps them from a clock that
// lags the one time.Now reads by up to a tick (a few milliseconds), so a
// file changed right after a container was created could otherwise get a
// ctime no later than the container's creation, and be missed. A builder
// that writes into its container as soon as it has made it waits here
// first.
func waitPastCtime(dir string, t time.Time) error {
	f, err := os.CreateTemp(dir, ".ctime-probe-*")
	if err != nil {
		return err
	}
	probe := f.Name()
	f.Close()
	defer os.Remove(probe)
	for deadline := time.Now().Add(time.Second); ; {
		var st unix.Stat_t
		if err := unix.Lstat(probe, &st); err != nil {
			return err
		}
		if time.Unix(st.Ctim.Sec, st.Ctim.Nsec).After(t) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the ctimes on %s stay at or before %s", dir, t.Format(time.RFC3339Nano))
		}
		time.Sleep(time.Millisecond)
		if err := os.Chmod(probe, 0o600); err != nil { // sets its ctime
			return err
		}
	}
}
