package bricklayer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bricklayer/bricklayer/internal/layerexport"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// This file clears what commits that were killed outright (SIGKILL, a
// crash, a power cut) left behind, which their own cleanup never ran for:
// a temporary export directory, an archive's partial file, a layout's
// partial blob, the image a dir: directory held before.
//
// Temporary directories and archives' partial files lie where other
// commits run (TMPDIR, beside an archive that no lock guards), so a commit
// holds an exclusive flock(2) on what it makes there for as long as it
// runs, which ends with the process however it ends; a later commit
// removes the ones whose lock it can take. Leftovers inside an OCI layout
// or beside a dir: directory are removed by the next commit to it, which
// holds the directory's lock (see claimLocalDestination).

// exportDirLock is the file in a temporary export directory that its
// commit holds locked. It also marks the directory as bricklayer's.
const exportDirLock = ".bricklayer-export"

// staleAge is how old a leftover must be, besides unlocked, to be removed:
// a younger one may be a live commit's, made and not yet locked.
const staleAge = time.Minute

// holdPath takes an exclusive flock on path, a regular file, and returns
// what lets it go. A symlink, a FIFO or a device there is refused without
// being followed or waited on: anyone may plant one in a shared TMPDIR.
func holdPath(path string) (release func(), err error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// globQuote escapes the characters filepath.Glob would take for a pattern
// in s, a path to match as it is.
func globQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// makeExportDir makes a temporary export directory in parent, marked and
// held as a live commit's, clearing first the ones that dead commits left
// there. release lets the lock go, once the directory is removed.
func makeExportDir(parent string) (dir string, release func(), err error) {
	removeStale(filepath.Join(globQuote(parent), "bricklayer-*"), exportDirLock)
	if dir, err = os.MkdirTemp(parent, "bricklayer-"); err != nil {
		return "", nil, err
	}
	lock := filepath.Join(dir, exportDirLock)
	if err = os.WriteFile(lock, nil, 0o600); err == nil {
		release, err = holdPath(lock)
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, release, nil
}

// removeStale removes what matches pattern that is older than staleAge
// and not held: a directory only if it holds the lock file named lock
// (and so is one of ours), a file ("" for lock) if it is not locked itself.
func removeStale(pattern, lock string) {
	matches, err := filepath.Glob(pattern)
	if err != nil {
		return
	}
	for _, p := range matches {
		fi, err := os.Lstat(p)
		if err != nil || time.Since(fi.ModTime()) < staleAge {
			continue
		}
		held := p
		if lock != "" {
			if !fi.IsDir() {
				continue
			}
			held = filepath.Join(p, lock)
		} else if !fi.Mode().IsRegular() {
			continue
		}
		release, err := holdPath(held)
		if err != nil {
			continue // a live commit's, or not ours
		}
		if err := os.RemoveAll(p); err != nil {
			logrus.Debugf("removing %s, left by a commit that did not end: %v", p, err)
		} else {
			logrus.Debugf("removed %s, left by a commit that did not end", p)
		}
		release()
	}
}

// clearLayoutLeftovers removes the partial blobs that killed commits left
// in the OCI layout dir: layers being exported, blobs being taken from the
// blob cache. Only a commit holding the layout's lock may call it: every
// commit of ours to it holds that lock, and no other tool writes blobs
// under these names.
func clearLayoutLeftovers(dir string) {
	blobs := filepath.Join(globQuote(dir), "blobs", "sha256")
	partials, _ := filepath.Glob(filepath.Join(blobs, layerexport.TempPattern))
	cached, _ := filepath.Glob(filepath.Join(blobs, cachedTempPattern))
	for _, p := range append(partials, cached...) {
		if err := os.Remove(p); err == nil {
			logrus.Debugf("removed %s, left by a commit that did not end", p)
		}
	}
}

// clearDirLeftovers deals with the copies of a dir: directory's image that
// killed commits kept beside it (see keepDirImage): when the directory
// holds no image now (the commit was killed once containers/image had
// emptied it), the copy is put back; the rest are removed. Only a commit
// holding the directory's lock may call it.
func clearDirLeftovers(path string) {
	kept, _ := filepath.Glob(filepath.Join(globQuote(filepath.Dir(path)), globQuote(keptPrefix(path))+"*"))
	for _, k := range kept {
		_, noImage := os.Lstat(filepath.Join(path, "version"))
		if _, err := os.Lstat(filepath.Join(k, "version")); err == nil && errors.Is(noImage, fs.ErrNotExist) {
			putBackFiles(path, k)
		}
		if err := os.RemoveAll(k); err == nil {
			logrus.Debugf("removed %s, left by a commit that did not end", k)
		}
	}
}

// putBackFiles empties dir and moves the files of kept into it.
func putBackFiles(dir, kept string) {
	removeAdded(dir, nil)
	entries, err := os.ReadDir(kept)
	if err != nil {
		logrus.Warnf("putting back the image %s held: %v", dir, err)
	}
	for _, e := range entries {
		if err := os.Rename(filepath.Join(kept, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			logrus.Warnf("putting back %s: %v", filepath.Join(dir, e.Name()), err)
		}
	}
}
