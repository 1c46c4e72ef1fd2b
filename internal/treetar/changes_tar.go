package treetar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"go.podman.io/storage/pkg/archive"
	"golang.org/x/sys/unix"
)

// ChangesReader returns the tar stream of changes in the tree under root
// (see [WriteChanges]), written by a goroutine as it is read. Closing the
// reader stops the goroutine; an error it meets is returned by Read.
func ChangesReader(ctx context.Context, root string, changes []archive.Change, opts Options) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(WriteChanges(ctx, pw, root, changes, opts))
	}()
	return pr
}

// WriteChanges writes changes, which list how the tree under root differs
// from another (as [Changes] finds them), as a layer's tar stream to w, and
// ends it: in path order, a deletion as a whiteout entry (".wh." and the
// name, in the same directory), anything else as the file's entry (a
// directory's alone, without its contents). Once normalised, it is what
// containers/storage's archive.ExportChanges writes for the same list.
// changes is not modified.
func WriteChanges(ctx context.Context, w io.Writer, root string, changes []archive.Change, opts Options) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", root, err)
	}
	t, bw := newTreeWriter(ctx, w, root, opts)
	dirs := &dirStack{names: []string{""}, fds: []int{fd}}
	defer dirs.close()
	sorted := slices.SortedFunc(slices.Values(changes), func(a, b archive.Change) int { return strings.Compare(a.Path, b.Path) })
	for _, c := range sorted {
		if err := ctx.Err(); err != nil {
			return err
		}
		rel := strings.TrimPrefix(c.Path, "/")
		if rel == "" {
			continue // the root has no entry
		}
		dir, name := path.Split(rel)
		if c.Kind == archive.ChangeDelete {
			if err := t.writeHeader(whiteoutHeader(dir, name)); err != nil {
				return t.fail("writing the whiteout of", rel, err)
			}
			continue
		}
		dirfd, err := dirs.open(dir)
		if errors.Is(err, unix.ENOENT) {
			continue // removed while the tree was read
		}
		if err != nil {
			return t.fail("opening the directory of", rel, err)
		}
		if err := t.entry(dirfd, name, rel); err != nil {
			return err
		}
	}
	return t.end(bw)
}

// dirStack holds open the directories along the path of the last entry
// written, so that the next one, in path order, opens only what is new on
// its path. names[i] is fds[i]'s name relative to the root, with a trailing
// slash; names[0] is the root's, "".
type dirStack struct {
	names []string
	fds   []int
}

// open returns the open directory dir (relative to the root, "" or with a
// trailing slash), opening each of its components not open yet without
// following symbolic links.
func (s *dirStack) open(dir string) (int, error) {
	for top := len(s.names) - 1; top > 0 && !strings.HasPrefix(dir, s.names[top]); top-- {
		unix.Close(s.fds[top])
		s.names, s.fds = s.names[:top], s.fds[:top]
	}
	for {
		top := len(s.names) - 1
		if s.names[top] == dir {
			return s.fds[top], nil
		}
		rest := dir[len(s.names[top]):]
		next := rest[:strings.IndexByte(rest, '/')]
		fd, err := unix.Openat(s.fds[top], next, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return -1, ErrChanged // no longer a directory
		}
		if err != nil {
			return -1, err
		}
		s.names, s.fds = append(s.names, s.names[top]+next+"/"), append(s.fds, fd)
	}
}

// close closes every directory held open, the root's too.
func (s *dirStack) close() {
	for _, fd := range s.fds {
		unix.Close(fd)
	}
	s.names, s.fds = nil, nil
}
