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
