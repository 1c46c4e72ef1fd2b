package bricklayer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"go.podman.io/image/v5/types"
	"golang.org/x/sys/unix"
)

// A commit to a local destination (an OCI layout, a dir: directory, an
// archive file) has the destination to itself from start to end, and a
// failed commit removes what it added there.
//
// Commits take turns because an OCI layout's index.json is read when
// copy.Image opens the destination and written when it commits: two commits
// into one layout at once would lose one's tag. And a failed commit removes
// the files that were not there when it began, which must not include those
// of another commit. Within this process, commits to one path wait on a
// per-path semaphore. Across processes, commits to a directory (oci:, dir:)
// wait on flock(2) held on the directory itself, which leaves no lock file
// behind; other tools that write the directory do not take it.

// localDestinationTurns holds a semaphore (a chan struct{} of capacity 1)
// per absolute path.
var localDestinationTurns sync.Map

// lockPollInterval is how often a commit waiting for another process's
// commit to a directory tries the lock again.
const lockPollInterval = 20 * time.Millisecond

// lockDirTries bounds how many times lockDir makes the directory again
// when it goes away between its making and its locking.
const lockDirTries = 100

// claimLocalDestination waits until dest is free, takes it, and notes what
// it holds. undo removes what the commit added; release frees dest for the
// next commit and must come after undo. For registries and containers-
// storage both do nothing: copy.Image makes nothing visible there before
// every blob is in place, and those destinations order their writers.
func claimLocalDestination(ctx context.Context, dest types.ImageReference) (undo, release func(), err error) {
	path := localPath(dest)
	if path == "" {
		return func() {}, func() {}, nil
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	// A destination reached through a symlink is dealt with where it is:
	// its undo walks, and its kept copy lies beside, the real directory.
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("writing to %s: %w", path, err)
	}
	t, _ := localDestinationTurns.LoadOrStore(path, make(chan struct{}, 1))
	turn := t.(chan struct{})
	select {
	case turn <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("waiting for another commit to %s: %w", path, ctx.Err())
	}
	release = func() { <-turn }

	created := false
	switch dest.Transport().Name() {
	case "oci", "dir":
		var d *os.File
		d, created, err = lockDir(ctx, path)
		switch {
		case err == nil:
			release = func() {
				d.Close() // closing the descriptor drops the flock
				<-turn
			}
			if dest.Transport().Name() == "oci" {
				clearLayoutLeftovers(path)
			} else {
				clearDirLeftovers(path)
			}
		case ctx.Err() != nil:
			<-turn
			return nil, nil, err
		default:
			// copy.Image will say what is wrong with path, if anything is.
			logrus.Debugf("not locking %s against other processes: %v", path, err)
		}
	}
	if isArchive(dest) {
		// Written beside path and put in place once complete
		// (archiveViaTemp): a failed commit leaves nothing at path.
		return func() {}, release, nil
	}
	undo = snapshotDestination(path, created)
	if dest.Transport().Name() == "dir" && !created {
		undo, release = keepDirImage(path, undo, release)
	}
	return undo, release, nil
}

// keepDirImage makes a failed commit to the dir: directory path put back
// the image it held. containers/image empties such a directory when it
// opens it as a destination, so before the commit its files are linked
// into a new directory beside it: the returned undo puts them back in
// place of whatever the commit left, and release removes that directory.
// A directory without a version file holds no image, and containers/image
// refuses it untouched; so does undo. Where the files cannot be kept (the
// directory holds more than files, or is a mount point that links cannot
// leave), undo removes everything the directory holds once
// containers/image has emptied it, and a later commit finds it as one
// made anew.
func keepDirImage(path string, undo, release func()) (func(), func()) {
	version := filepath.Join(path, "version")
	if _, err := os.Lstat(version); err != nil {
		return undo, release
	}
	kept, err := linkFilesBeside(path)
	if err != nil {
		logrus.Debugf("not keeping the image in %s to put back if the commit fails: %v", path, err)
		return func() {
			if _, err := os.Lstat(version); errors.Is(err, fs.ErrNotExist) {
				removeAdded(path, nil)
				return
			}
			undo()
		}, release
	}
	return func() { putBackFiles(path, kept) }, func() {
		if err := os.RemoveAll(kept); err != nil {
			logrus.Warnf("removing %s: %v", kept, err)
		}
		release()
	}
}

// linkFilesBeside links every file of the directory path into a new
// directory beside it, hidden, and returns that directory. It fails, and
// makes nothing, if path holds anything but files or a link fails.
func linkFilesBeside(path string) (string, error) {
	entries, err := os.ReadDir(path)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return "", fmt.Errorf("%s is not a file", filepath.Join(path, e.Name()))
		}
	}
	kept, err := os.MkdirTemp(filepath.Dir(path), keptPrefix(path))
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if err := os.Link(filepath.Join(path, e.Name()), filepath.Join(kept, e.Name())); err != nil {
			os.RemoveAll(kept)
			return "", err
		}
	}
	return kept, nil
}

// keptPrefix starts the name of the directory beside path that keeps its
// image during a commit (see keepDirImage, clearDirLeftovers).
func keptPrefix(path string) string { return "." + filepath.Base(path) + ".kept-" }

// lockDir takes an exclusive flock on the directory path, making it first
// if it is missing (created says so). A commit that held the lock and failed
// may have removed the directory before dropping it, so a lock taken on a
// directory that is no longer at path is dropped and taken again, a few
// times at most.
func lockDir(ctx context.Context, path string) (d *os.File, created bool, err error) {
	madeParent := false
	for tries := 0; ; tries++ {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		if tries == lockDirTries {
			return nil, false, fmt.Errorf("%s keeps going away", path)
		}
		created = false
		switch err := os.Mkdir(path, 0o755); {
		case err == nil:
			created = true
		case errors.Is(err, fs.ErrNotExist) && !madeParent:
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return nil, false, err
			}
			madeParent = true
			continue
		case !errors.Is(err, fs.ErrExist):
			// Still missing with its parent there: a file system that
			// makes no directories (/proc) says so this way.
			return nil, false, err
		}
		d, err = os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since: make it again
		}
		if err != nil {
			return nil, false, err
		}
		if err := flockWait(ctx, d); err != nil {
			d.Close()
			return nil, false, err
		}
		held, err := d.Stat()
		if err != nil {
			d.Close()
			return nil, false, err
		}
		if !held.IsDir() {
			d.Close()
			return nil, false, fmt.Errorf("%s: not a directory", path)
		}
		if now, err := os.Stat(path); err == nil && os.SameFile(held, now) {
			return d, created, nil
		}
		d.Close()
	}
}

// flockWait takes an exclusive flock on d, trying again every
// lockPollInterval while another process holds it, until ctx ends.
func flockWait(ctx context.Context, d *os.File) error {
	logged := false
	for {
		err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("locking %s: %w", d.Name(), err)
		}
		if !logged {
			logrus.Debugf("waiting for another process's commit to %s", d.Name())
			logged = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for another process's commit to %s: %w", d.Name(), ctx.Err())
		case <-time.After(lockPollInterval):
		}
	}
}

// snapshotDestination notes what path holds and returns a function that
// removes what was added since: files and directories that were not there,
// and path itself if it was not there or was made empty by the lock
// (created).
func snapshotDestination(path string, created bool) (undo func()) {
	before := entriesUnder(path)
	_, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) || (created && len(before) == 0) {
		return func() {
			if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
				return // never made (RemoveAll would still try, and fail on a read-only file system)
			}
			if err := os.RemoveAll(path); err != nil {
				logrus.Warnf("removing %s after a failed commit: %v", path, err)
			}
		}
	}
	return func() { removeAdded(path, before) }
}

// retryReset notes what dest's local path holds and returns a function
// that puts it back that way before copy.Image tries again: a failed try
// leaves the blobs it wrote, and containers/image refuses a dir: directory
// that holds files but no image, and a docker-archive file that is not
// empty. A file that was not there is removed; a directory stays, as the
// commit holds it locked. A dir: directory is emptied: the try that failed
// had emptied it already when it opened it, as containers/image replaces
// the image a dir: directory holds, and the blobs it wrote may bear the
// names of the old image's. An archive (dest is then the file beside it
// that archiveViaTemp gives) is emptied. For other destinations it does
// nothing.
func retryReset(dest types.ImageReference) (reset func()) {
	path := localPath(dest)
	switch {
	case path == "":
		return func() {}
	case isArchive(dest):
		// The file beside the archive (archiveViaTemp), emptied: a
		// docker-archive destination refuses a file that is not. A
		// device or FIFO is left alone.
		return func() {
			if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
				return
			}
			if err := os.Truncate(path, 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
				logrus.Warnf("emptying %s before trying again: %v", path, err)
			}
		}
	case dest.Transport().Name() == "dir":
		return func() { removeAdded(path, nil) }
	}
	return snapshotDestination(path, false)
}

// entriesUnder lists what the directory path holds, at any depth; nothing
// for a file.
func entriesUnder(path string) map[string]bool {
	entries := map[string]bool{}
	_ = filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err == nil && p != path {
			entries[p] = true
		}
		return nil
	})
	return entries
}

// removeAdded removes what the directory path holds that before does not
// list.
func removeAdded(path string, before map[string]bool) {
	var added []string
	_ = filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err == nil && p != path && !before[p] {
			added = append(added, p)
		}
		return nil
	})
	// Deepest first, so that a directory is empty when its turn comes.
	slices.Reverse(added)
	for _, p := range added {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			logrus.Warnf("removing %s after a failed commit: %v", p, err)
		}
	}
}

// archiveViaTemp returns the reference copy.Image is to write an archive
// destination (oci-archive, docker-archive) through, and what to do once it
// has: a new file beside the archive, which done puts in its place when
// the copy succeeded, and abandon removes when it failed or before it is
// tried again. containers/image writes an archive in place, so a copy that
// failed while writing it (a full disk, a kill) left a truncated archive
// where an image had been, or, for a docker-archive, which it refuses to
// add to, a file that no later commit could replace; and two processes
// writing one archive wrote one file at once. An oci-archive is replaced
// (renamed over); a docker-archive is put in place only where there is
// none, as containers/image would: a file that holds one when the commit
// starts, or by the time it ends (another process's), is refused. The new
// file gets the mode (and, where allowed, the owner) of the archive it
// replaces, else the mode containers/image would create it with.
//
// Other destinations are returned as they are, with done and abandon doing
// nothing; and so is an archive that is not a regular file (a device, a
// FIFO: /dev/stdout, a pipe to a reader), or in a directory this process
// may not write, which containers/image writes in place.
func archiveViaTemp(dest types.ImageReference) (ref types.ImageReference, done func() error, abandon func(), err error) {
	inPlace := func() (types.ImageReference, func() error, func(), error) {
		return dest, func() error { return nil }, func() {}, nil
	}
	if !isArchive(dest) {
		return inPlace()
	}
	kind := dest.Transport().Name()
	path := localPath(dest)
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real // the archive is written where a link points
	}
	mode := newFileMode()
	old, statErr := os.Stat(path)
	switch {
	case statErr == nil && !old.Mode().IsRegular():
		return inPlace()
	case statErr == nil:
		mode = old.Mode().Perm()
	}
	if kind == "docker-archive" {
		if err := archiveAbsent(path); err != nil {
			return nil, nil, nil, err
		}
	}
	// The file is held locked while the commit runs (see stale.go), so
	// that a later commit can tell one that a killed commit left.
	prefix := "." + filepath.Base(path) + ".partial-"
	removeStale(filepath.Join(globQuote(filepath.Dir(path)), globQuote(prefix)+"*"), "")
	f, err := os.CreateTemp(filepath.Dir(path), prefix)
	if errors.Is(err, fs.ErrPermission) {
		logrus.Debugf("writing %s in place: %v", path, err)
		return inPlace()
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating a file beside %s to write the archive to: %w", path, err)
	}
	tmp := f.Name()
	f.Close()
	release, err := holdPath(tmp)
	if err == nil {
		err = os.Chmod(tmp, mode)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, nil, nil, fmt.Errorf("creating a file beside %s to write the archive to: %w", path, err)
	}
	if statErr == nil {
		if st, ok := old.Sys().(*syscall.Stat_t); ok {
			_ = os.Lchown(tmp, int(st.Uid), int(st.Gid)) // as the archive it replaces, where allowed
		}
	}
	within := tmp
	if _, image, ok := strings.Cut(dest.StringWithinTransport(), ":"); ok {
		within += ":" + image
	}
	if ref, err = dest.Transport().ParseReference(within); err != nil {
		release()
		os.Remove(tmp)
		return nil, nil, nil, fmt.Errorf("referring to %s: %w", tmp, err)
	}
	abandon = func() {
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			logrus.Warnf("removing %s after a failed commit: %v", tmp, err)
		}
		release()
	}
	done = func() error {
		var err error
		if kind == "docker-archive" {
			err = linkIfAbsent(tmp, path)
		} else {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			abandon()
			return fmt.Errorf("putting the archive in place: %w", err)
		}
		release()
		return nil
	}
	return ref, done, abandon, nil
}

// newFileMode is the mode os.Create gives a new file: 0666 less the
// process's umask, read from /proc (setting the umask to read it would
// race with other goroutines making files); 0644 without /proc.
func newFileMode() fs.FileMode {
	data, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if umask, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return 0o666 &^ fs.FileMode(umask)
				}
			}
		}
	}
	return 0o644
}

// errArchiveExists: a docker-archive destination holds an archive already.
var errArchiveExists = errors.New("holds an archive already, which a docker-archive destination does not add to")

// archiveAbsent fails if path is a file that is not empty, as
// containers/image's docker-archive destination would.
func archiveAbsent(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode().IsRegular() && fi.Size() == 0:
		return nil
	}
	return fmt.Errorf("%s %w", path, errArchiveExists)
}

// linkIfAbsent puts the file tmp at path, unless path holds an archive by
// now, and removes the name tmp.
func linkIfAbsent(tmp, path string) error {
	err := os.Link(tmp, path)
	if errors.Is(err, fs.ErrExist) {
		if err = archiveAbsent(path); err == nil {
			err = os.Rename(tmp, path) // an empty file, made to be written
		}
	}
	if err != nil {
		return err
	}
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// isArchive says whether dest is an archive file (oci-archive,
// docker-archive).
func isArchive(dest types.ImageReference) bool {
	kind := dest.Transport().Name()
	return kind == "oci-archive" || kind == "docker-archive"
}

// localPath is the file or directory a local transport writes, "" for the
// others.
func localPath(dest types.ImageReference) string {
	switch dest.Transport().Name() {
	case "oci", "dir", "oci-archive", "docker-archive":
	default:
		return ""
	}
	s := dest.StringWithinTransport()
	if dest.Transport().Name() != "dir" {
		if i := strings.Index(s, ":"); i >= 0 {
			s = s[:i]
		}
	}
	return s
}
