package copier

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Extract writes the entries of the uncompressed tar stream archive into
// the directory dst, a path in the root, which is made when missing. Entry
// names and hard link targets are taken from dst: a leading "/" is dropped,
// as GNU tar does, and a name that climbs above dst ("../x") stops the
// extraction with [ErrPathEscape]. Symlinks are written as they are; while
// the archive is extracted, the entries' paths are resolved with dst as
// their root, as Docker's ADD does, so that a symlink in the archive (or in
// dst) to "/" or "../.." cannot lead a later entry, or a hard link's
// target, out of dst. An entry is never written through an existing symlink
// or hard link, which it replaces.
//
// Owners, modes, extended attributes (where the root's file system takes
// them) and times come from the entries, as opts changes them. An entry for
// dst itself ("." or "./") sets dst's metadata. Names starting with ".wh."
// are refused ([ErrReservedName]). On error, what was written so far stays.
func (r *Root) Extract(ctx context.Context, archive io.Reader, dst string, opts Options) (err error) {
	dst = Clean(dst)
	top, _, err := r.mkdirAll(dst)
	if err != nil {
		return err
	}
	defer func() {
		if top != nil {
			top.Close()
		}
	}()
	in, err := subRoot(top, path.Join(r.path, dst))
	if err != nil {
		return err
	}
	defer in.Close()
	w := &writer{r: in, o: opts}
	defer func() {
		if ferr := w.finish(); ferr != nil && err == nil {
			err = ferr
		}
	}()
	tr := tar.NewReader(archive)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading archive: %w", err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		rel, err := entryPath(hdr.Name)
		if err != nil {
			return err
		}
		if rel == "." {
			if hdr.Typeflag == tar.TypeDir && top != nil {
				f := top
				top = nil
				if err := w.applyDir(f, dst, hdr); err != nil {
					return err
				}
			}
			continue
		}
		if hdr.Typeflag == tar.TypeLink {
			lrel, err := entryPath(hdr.Linkname)
			if err != nil {
				return fmt.Errorf("archive entry %q: hard link target: %w", hdr.Name, err)
			}
			hdr.Linkname = "/" + lrel
		}
		if err := w.put("/"+rel, hdr, tr); err != nil {
			return fmt.Errorf("extracting archive entry %q: %w", hdr.Name, err)
		}
	}
}

// subRoot opens the directory dir, at hostPath, as a Root of its own.
func subRoot(dir *os.File, hostPath string) (*Root, error) {
	fd, err := unix.Openat(int(dir.Fd()), ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", hostPath, err)
	}
	return &Root{path: hostPath, dir: os.NewFile(uintptr(fd), hostPath)}, nil
}

// entryPath returns an archive entry's name as a clean path relative to the
// extraction directory.
func entryPath(name string) (string, error) {
	rel := path.Clean(strings.TrimLeft(name, "/"))
	if rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("archive entry %q: %w", name, ErrPathEscape)
	}
	return rel, nil
}
