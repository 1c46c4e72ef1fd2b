// Package tarnorm rewrites a tar stream into a normalised form, so that the
// same tree always gives the same bytes: numeric owners only, no access or
// change times, whole-second modification times (optionally clamped),
// whiteouts with a fixed time and no owner, mode or link name, and no PAX
// records but extended attributes, which the tar writer sorts.
package tarnorm

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// Options say how entries are rewritten. The zero value normalises without
// changing any modification time.
type Options struct {
	// ClampMtime, when non-zero, is the latest modification time an entry may
	// carry: later times are set to it (SOURCE_DATE_EPOCH semantics).
	ClampMtime time.Time
	// Check, when set, is given each entry's header as it is read, before
	// it is normalised; an error it returns ends the copy.
	Check func(*tar.Header) error
}

// xattrPrefix is the PAX record prefix that carries extended attributes.
const xattrPrefix = "SCHILY.xattr."

// WhiteoutPrefix starts the base name of an entry that marks a deletion
// (".wh.NAME", and OpaqueMarker for an opaque directory).
const WhiteoutPrefix = ".wh."

// OpaqueMarker is the whiteout entry that makes its directory opaque.
const OpaqueMarker = WhiteoutPrefix + WhiteoutPrefix + ".opq"

// whiteoutTime is the modification time every whiteout entry is given. The
// store writes whiteouts with the time of the export, which would make the
// same layer give different bytes every second; the time of a whiteout
// means nothing, as it is never extracted as a file.
var whiteoutTime = time.Unix(0, 0).UTC()

// Copy reads the tar stream src and writes its normalised form to dst,
// including the end-of-archive marker. It does not close dst. Entry contents
// are copied through a buffer of bufSize bytes (32 KiB when bufSize <= 0).
func Copy(dst io.Writer, src io.Reader, opts Options, bufSize int) error {
	if bufSize <= 0 {
		bufSize = 32 << 10
	}
	buf := make([]byte, bufSize)
	tr := tar.NewReader(src)
	tw := tar.NewWriter(dst)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading tar stream: %w", err)
		}
		if opts.Check != nil {
			if err := opts.Check(hdr); err != nil {
				return err
			}
		}
		Header(hdr, opts)
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("writing tar header for %q: %w", hdr.Name, err)
		}
		if hdr.Size > 0 {
			if _, err := io.CopyBuffer(tw, tr, buf); err != nil {
				return fmt.Errorf("copying %q: %w", hdr.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("finishing tar stream: %w", err)
	}
	return nil
}

// Header normalises one header in place.
func Header(hdr *tar.Header, opts Options) {
	hdr.Uname, hdr.Gname = "", ""
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	hdr.ModTime = hdr.ModTime.Truncate(time.Second)
	if !opts.ClampMtime.IsZero() && hdr.ModTime.After(opts.ClampMtime) {
		hdr.ModTime = opts.ClampMtime
	}
	hdr.ModTime = hdr.ModTime.UTC()
	if base := path.Base(hdr.Name); strings.HasPrefix(base, WhiteoutPrefix) {
		hdr.ModTime = whiteoutTime
		if base != OpaqueMarker && hdr.Typeflag == tar.TypeReg {
			// A whiteout's owner, mode and link name come from how the
			// store made it (the overlay driver's are the kernel's shared
			// character device, created as the mounter), not from the layer.
			hdr.Mode, hdr.Uid, hdr.Gid, hdr.Linkname = 0, 0, 0, ""
			hdr.PAXRecords = nil
		}
	}
	// Sparse entries are read back as regular files with their holes filled.
	if hdr.Typeflag == tar.TypeGNUSparse || hdr.Typeflag == tar.TypeRegA {
		hdr.Typeflag = tar.TypeReg
	}
	var records map[string]string
	for k, v := range hdr.PAXRecords {
		if strings.HasPrefix(k, xattrPrefix) {
			if records == nil {
				records = make(map[string]string)
			}
			records[k] = v
		}
	}
	//nolint:staticcheck // Xattrs duplicates PAXRecords; clear it so only one source remains.
	hdr.Xattrs = nil
	hdr.PAXRecords = records
	// Let the writer choose the simplest format that holds the header.
	hdr.Format = tar.FormatUnknown
}
