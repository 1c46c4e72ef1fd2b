package bricklayer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bricklayer/bricklayer/internal/copier"
)

// This file turns CommitOptions.ExtraImageContent into tar entries: host
// files, directories and symlinks placed at paths in the image, owned by
// root, with the directories they need.

// extraEntry is one entry of the extra content: a header, and for a regular
// file the host file its bytes are read from.
type extraEntry struct {
	hdr  *tar.Header
	host string
}

// imagePath is dest as a tar entry name: cleaned, relative to the root,
// without a trailing slash; "" for the root itself.
func imagePath(dest string) string {
	return strings.TrimPrefix(path.Clean("/"+dest), "/")
}

// extraContent lists the entries of content (image path to host path),
// parents before children. A destination inside a host directory given for
// another destination overrides that directory's entry. root is the tree
// the entries go on top of ("" for none): a directory a destination needs
// that root lacks is made, with mode 0755 and mtime made; one that root has
// is left as it is, and must be a directory there (not a symlink).
func extraContent(content map[string]string, root string, made time.Time) ([]extraEntry, error) {
	entries := map[string]extraEntry{}
	// Shorter destinations first, so that a longer one inside a host
	// directory replaces what the directory gave.
	dests := slices.SortedFunc(maps.Keys(content), func(a, b string) int {
		return strings.Compare(imagePath(a), imagePath(b))
	})
	for _, dest := range dests {
		if err := addHostPath(entries, imagePath(dest), content[dest]); err != nil {
			return nil, fmt.Errorf("extra image content at %s: %w", dest, err)
		}
	}
	for _, name := range slices.Collect(maps.Keys(entries)) {
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if e, ok := entries[dir]; ok {
				if e.hdr.Typeflag != tar.TypeDir {
					return nil, fmt.Errorf("extra image content at /%s: /%s is not a directory in the extra content", name, dir)
				}
				continue
			}
			exists, err := dirInTree(root, dir)
			if err != nil {
				return nil, fmt.Errorf("extra image content at /%s: %w", name, err)
			}
			if !exists {
				entries[dir] = extraEntry{hdr: &tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: made}}
			}
		}
	}
	names := slices.Sorted(maps.Keys(entries))
	out := make([]extraEntry, 0, len(names))
	for _, n := range names {
		out = append(out, entries[n])
	}
	return out, nil
}

// dirInTree reports whether name is a directory in the tree at root, and
// fails if it is something else there.
func dirInTree(root, name string) (bool, error) {
	if root == "" {
		return false, nil
	}
	fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(name)))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case !fi.IsDir():
		return false, fmt.Errorf("/%s is a %s in the container, not a directory", name, typeName(fi.Mode()))
	}
	return true, nil
}

// addHostPath adds the entries for host at name: one for a file or symlink,
// one per file below it too for a directory.
func addHostPath(entries map[string]extraEntry, name, host string) error {
	fi, err := os.Lstat(host)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		e, err := hostEntry(name, host, fi)
		if err != nil {
			return err
		}
		entries[name] = e
		return nil
	}
	return filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(host, p)
		if err != nil {
			return err
		}
		n := name
		if rel != "." {
			n = name + "/" + filepath.ToSlash(rel)
		}
		e, err := hostEntry(n, p, fi)
		if err != nil {
			return err
		}
		entries[n] = e
		return nil
	})
}

// hostEntry is the entry of one host file, owned by root.
func hostEntry(name, host string, fi fs.FileInfo) (extraEntry, error) {
	hdr := &tar.Header{Name: name, Mode: copier.TarMode(fi.Mode()), ModTime: fi.ModTime()}
	e := extraEntry{hdr: hdr}
	switch {
	case fi.Mode().IsRegular():
		hdr.Typeflag, hdr.Size, e.host = tar.TypeReg, fi.Size(), host
	case fi.IsDir():
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(host)
		if err != nil {
			return extraEntry{}, err
		}
		hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, target, 0o777
	default:
		return extraEntry{}, fmt.Errorf("%s is a %s, not a file, directory or symlink", host, typeName(fi.Mode()))
	}
	return e, nil
}

// typeName names a file type for an error message.
func typeName(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	case m.IsRegular():
		return "file"
	}
	return "special file"
}

// writeExtraEntries writes entries to tw, reading each regular file's bytes
// from its host file. A host file whose size changed since it was listed is
// an error.
func writeExtraEntries(ctx context.Context, tw *tar.Writer, entries []extraEntry) error {
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr := *e.hdr
		if err := tw.WriteHeader(&hdr); err != nil {
			return fmt.Errorf("writing the entry of %s: %w", e.hdr.Name, err)
		}
		if e.host == "" {
			continue
		}
		if err := copyHostFile(tw, e.host, hdr.Size); err != nil {
			return err
		}
	}
	return nil
}

func copyHostFile(w io.Writer, host string, size int64) error {
	f, err := os.Open(host)
	if err != nil {
		return fmt.Errorf("reading extra image content: %w", err)
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size+1))
	if err != nil {
		return fmt.Errorf("reading extra image content %s: %w", host, err)
	}
	if n != size {
		return fmt.Errorf("reading extra image content %s: %d bytes, %d when listed: it changed", host, n, size)
	}
	return nil
}

// extraTarStream is the extra content as a tar stream. The caller must
// close it.
func extraTarStream(ctx context.Context, entries []extraEntry) io.ReadCloser {
	return produce(func(w io.Writer) error {
		tw := tar.NewWriter(w)
		if err := writeExtraEntries(ctx, tw, entries); err != nil {
			return err
		}
		return tw.Close()
	})
}

// produce runs fn in a goroutine and returns what it writes as a stream,
// which fails with fn's error. Close stops fn's writes and waits for it to
// return.
func produce(fn func(w io.Writer) error) io.ReadCloser {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(fn(pw))
	}()
	return &producedStream{PipeReader: pr, done: done}
}

type producedStream struct {
	*io.PipeReader
	done chan struct{}
}

func (p *producedStream) Close() error {
	err := p.PipeReader.Close()
	<-p.done
	return err
}

// overlayTarStream is the tar stream lower with the extra entries on top,
// as one layer: an entry of lower that the extra content sets, or that is
// below one of its non-directories, is left out, and the extra entries
// follow. A hard link in lower to an entry left out is an error: its bytes
// are gone. The caller must close it.
func overlayTarStream(ctx context.Context, lower io.Reader, entries []extraEntry) io.ReadCloser {
	set := map[string]bool{}
	var files []string
	for _, e := range entries {
		name := imagePath(e.hdr.Name)
		set[name] = true
		if e.hdr.Typeflag != tar.TypeDir {
			files = append(files, name+"/")
		}
	}
	hidden := func(name string) bool {
		if set[name] {
			return true
		}
		for _, f := range files {
			if strings.HasPrefix(name, f) {
				return true
			}
		}
		return false
	}
	return produce(func(w io.Writer) error {
		tr := tar.NewReader(lower)
		tw := tar.NewWriter(w)
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("reading the container's tree: %w", err)
			}
			if hidden(imagePath(hdr.Name)) {
				continue
			}
			if hdr.Typeflag == tar.TypeLink && hidden(imagePath(hdr.Linkname)) {
				return fmt.Errorf("extra image content replaces /%s, which /%s is a hard link to: %w", imagePath(hdr.Linkname), imagePath(hdr.Name), ErrInvalidOptions)
			}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if _, err := io.Copy(tw, tr); err != nil {
				return err
			}
		}
		if err := writeExtraEntries(ctx, tw, entries); err != nil {
			return err
		}
		return tw.Close()
	})
}
