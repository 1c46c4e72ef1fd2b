package tarnorm

import (
	"archive/tar"
	"testing"
	"time"
)

// TestHeaderWhiteoutTime: whiteouts get a fixed time whatever the store
// wrote, so the same deletions give the same bytes; other entries keep
// theirs.
func TestHeaderWhiteoutTime(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		want time.Time
	}{
		{"dir/.wh.file", whiteoutTime},
		{".wh.top", whiteoutTime},
		{"dir/.wh..wh..opq", whiteoutTime},
		{"dir/file.wh.not", now.Truncate(time.Second).UTC()},
		{"dir/.whx", now.Truncate(time.Second).UTC()},
	} {
		hdr := &tar.Header{Name: tc.name, Typeflag: tar.TypeReg, ModTime: now}
		Header(hdr, Options{})
		if !hdr.ModTime.Equal(tc.want) {
			t.Errorf("%s: modification time %v, want %v", tc.name, hdr.ModTime, tc.want)
		}
	}
}

// TestHeaderWhiteoutAttributes: a whiteout ends up with no owner, mode,
// link name or attributes, whatever the store wrote (the overlay driver's
// second whiteout of a shared inode carries the first one's name as its
// link name); an opaque marker keeps its directory's owner and mode.
func TestHeaderWhiteoutAttributes(t *testing.T) {
	whiteout := &tar.Header{Name: "dir/.wh.b", Typeflag: tar.TypeReg, Mode: 0o600, Uid: 100000, Gid: 100000,
		Linkname: "dir/.wh.a", PAXRecords: map[string]string{xattrPrefix + "user.x": "y"}}
	Header(whiteout, Options{})
	if whiteout.Mode != 0 || whiteout.Uid != 0 || whiteout.Gid != 0 || whiteout.Linkname != "" || whiteout.PAXRecords != nil {
		t.Errorf("whiteout normalised to %+v", whiteout)
	}
	opaque := &tar.Header{Name: "dir/.wh..wh..opq", Typeflag: tar.TypeReg, Mode: 0o755, Uid: 7, Gid: 8}
	Header(opaque, Options{})
	if opaque.Mode != 0o755 || opaque.Uid != 7 || opaque.Gid != 8 {
		t.Errorf("opaque marker normalised to %+v", opaque)
	}
	link := &tar.Header{Name: "dir/file", Typeflag: tar.TypeLink, Mode: 0o644, Uid: 7, Linkname: "dir/other"}
	Header(link, Options{})
	if link.Linkname != "dir/other" || link.Uid != 7 || link.Mode != 0o644 {
		t.Errorf("hard link normalised to %+v", link)
	}
}
