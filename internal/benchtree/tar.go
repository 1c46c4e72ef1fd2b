package benchtree

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Tar writes the tree under root to w as a tar stream, in lexical order,
// names relative to root, hard links as links to the first name met, and
// no extended attributes: the least work a layer's tar stream takes, for the
// in-process floor. It returns the length of the stream.
func Tar(w io.Writer, root string) (int64, error) {
	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	buf := make([]byte, mib)
	type inode struct{ dev, ino uint64 }
	linked := map[inode]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		target := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, target)
		if err != nil {
			return fmt.Errorf("describing %s: %w", p, err)
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			key := inode{uint64(st.Dev), st.Ino}
			if first, ok := linked[key]; ok {
				hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			} else {
				linked[key] = hdr.Name
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("writing the header of %s: %w", p, err)
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		// Hide File.WriteTo, which would copy through its own small buffer.
		if _, err := io.CopyBuffer(tw, struct{ io.Reader }{f}, buf); err != nil {
			return fmt.Errorf("copying %s: %w", p, err)
		}
		return nil
	})
	if err != nil {
		return cw.n, fmt.Errorf("tarring %s: %w", root, err)
	}
	if err := tw.Close(); err != nil {
		return cw.n, fmt.Errorf("tarring %s: %w", root, err)
	}
	return cw.n, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
