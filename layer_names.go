package bricklayer

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"unicode/utf8"

	"github.com/sirupsen/logrus"
	"go.podman.io/storage"
)

// checkDirNames fails with [ErrUnreadableName] when layer l, a layer
// without a parent, holds a directory whose name is not valid UTF-8.
// containers/storage makes the diff of such a layer by walking it through
// io/fs, which refuses those names: the directory would be in the layer,
// its contents left out, and nothing but a log line would say so. (Layers
// with a parent are read from their list of changes, which has no such
// limit; files with such names are read.) Directories below a path longer
// than PATH_MAX are not looked into.
func checkDirNames(store storage.Store, l *storage.Layer) error {
	if l.Parent != "" {
		return nil
	}
	mp, err := store.Mount(l.ID, l.MountLabel)
	if err != nil {
		return fmt.Errorf("mounting layer %s: %w", l.ID, err)
	}
	defer func() {
		if _, err := store.Unmount(l.ID, false); err != nil {
			logrus.Warnf("unmounting layer %s: %v", l.ID, err)
		}
	}()
	var bad string
	err = filepath.WalkDir(mp, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable here (too deep, removed meanwhile): the export will say
		}
		if d.IsDir() && !utf8.ValidString(d.Name()) {
			bad, _ = filepath.Rel(mp, p)
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading layer %s: %w", l.ID, err)
	}
	if bad != "" {
		return fmt.Errorf("layer %s: directory %q: %w", l.ID, "/"+bad, ErrUnreadableName)
	}
	return nil
}
