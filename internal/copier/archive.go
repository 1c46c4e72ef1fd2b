package copier

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Format is the kind of archive [OpenArchive] found.
type Format int

const (
	// NotArchive is anything but a tar archive.
	NotArchive Format = iota
	// Tar is an uncompressed tar archive.
	Tar
	// Gzip is a gzip-compressed tar archive.
	Gzip
	// Bzip2 is a bzip2-compressed tar archive.
	Bzip2
	// Xz is an xz-compressed tar archive.
	Xz
	// Zstd is a zstd-compressed tar archive.
	Zstd
)

// String names the format.
func (f Format) String() string {
	switch f {
	case NotArchive:
		return "not an archive"
	case Tar:
		return "tar"
	case Gzip:
		return "tar+gzip"
	case Bzip2:
		return "tar+bzip2"
	case Xz:
		return "tar+xz"
	case Zstd:
		return "tar+zstd"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// Magic numbers of the compressed formats.
var (
	gzipMagic  = []byte{0x1f, 0x8b, 0x08}
	bzip2Magic = []byte("BZh")
	xzMagic    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	zstdMagic  = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// tarBlockSize is the size of a tar header.
const tarBlockSize = 512

// OpenArchive opens the host file p and, when it holds a tar archive, plain
// or compressed with gzip, bzip2, xz or zstd, returns a reader of the
// uncompressed tar stream, which the caller must close. The format is told by
// the content, never the name; the first header block must be a valid tar
// header. For any other file, including a compressed file that is not a tar
// archive, it returns NotArchive and a nil reader. The stream's integrity is
// only known once it has been read to its end.
func OpenArchive(p string) (io.ReadCloser, Format, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, NotArchive, fmt.Errorf("opening %s: %w", p, err)
	}
	rc, format := openArchive(f)
	if format == NotArchive {
		f.Close()
		return nil, NotArchive, nil
	}
	return rc, format, nil
}

// archiveReader is an uncompressed tar stream and what must be closed with
// it.
type archiveReader struct {
	io.Reader
	closers []func() error
}

// Close closes the decompressor and the file.
func (a *archiveReader) Close() error {
	var first error
	for _, c := range a.closers {
		if err := c(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func openArchive(f *os.File) (io.ReadCloser, Format) {
	br := bufio.NewReaderSize(f, 64<<10)
	head, _ := br.Peek(len(xzMagic))
	a := &archiveReader{}
	var (
		r      io.Reader
		format Format
	)
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, NotArchive
		}
		r, format = zr, Gzip
		a.closers = append(a.closers, zr.Close)
	case bytes.HasPrefix(head, bzip2Magic) && len(head) > 3 && head[3] >= '1' && head[3] <= '9':
		r, format = bzip2.NewReader(br), Bzip2
	case bytes.HasPrefix(head, xzMagic):
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, NotArchive
		}
		r, format = xr, Xz
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, NotArchive
		}
		r, format = zr, Zstd
		a.closers = append(a.closers, func() error { zr.Close(); return nil })
	default:
		r, format = br, Tar
	}
	a.closers = append(a.closers, f.Close)
	tb := bufio.NewReaderSize(r, 64<<10)
	block, err := tb.Peek(tarBlockSize)
	if err != nil || !isTarHeader(block) {
		// The file stays open for the caller to close.
		a.closers = a.closers[:len(a.closers)-1]
		a.Close()
		return nil, NotArchive
	}
	a.Reader = tb
	return a, format
}

// isTarHeader reports whether block is a tar header: not all zeros, and
// with a checksum that matches (unsigned, or signed as some old tars wrote).
func isTarHeader(block []byte) bool {
	if len(block) < tarBlockSize {
		return false
	}
	field := strings.Trim(string(block[148:156]), " \x00")
	want, err := strconv.ParseInt(field, 8, 64)
	if err != nil {
		return false
	}
	var unsigned, signed int64
	zero := true
	for i, c := range block[:tarBlockSize] {
		if c != 0 {
			zero = false
		}
		if i >= 148 && i < 156 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	return !zero && (want == unsigned || want == signed)
}
