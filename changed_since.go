package bricklayer

import (
	"fmt"
	"os"
	"time"

	"github.com/sirupsen/logrus"
	"go.podman.io/storage"
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
// treetar.Changes, which compares the trees in place of the driver, makes
// that check in the same walk (ChangesOptions.ChangedSince).

// changeSweep says which layer's changes need the ctime check, and since
// when. The zero value checks nothing.
type changeSweep struct {
	layerID string
	since   time.Time
}

// sweepFor returns the check for container ctr's layer. It is made only
// where the driver finds changes by comparing trees (comparesTrees): vfs,
// and overlay when it does not make its diffs natively (with metacopy on,
// as Fedora's storage.conf sets it, or a kernel with redirect_dir), since
// treetar.Changes makes it as it compares them. In an overlay mount a file
// not copied up keeps its lower layer's ctime, older than the container; a
// copy-up, of content or metadata, gets a new one.
func sweepFor(ctr *storage.Container) changeSweep {
	if ctr.Created.IsZero() {
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

// changedSince returns the time the check counts changes from for layer
// l (the container's, against a parent), or the zero time when it does not
// apply to l.
func (c changeSweep) changedSince(l *storage.Layer) time.Time {
	if c.layerID == "" || l.ID != c.layerID || l.Parent == "" {
		return time.Time{}
	}
	return c.since
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
