package tarnorm

import (
	"archive/tar"
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestHeaderTimes(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("x", 3600))
	clamp := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	epoch := time.Unix(0, 0).UTC()
	for _, tc := range []struct {
		name  string
		entry string
		clamp time.Time
		want  time.Time
	}{
		{"file", "a/b", time.Time{}, now.Truncate(time.Second).UTC()},
		{"file-clamped", "a/b", clamp, clamp},
		{"whiteout", "a/.wh.b", time.Time{}, epoch},
		{"whiteout-clamped", "a/.wh.b", clamp, epoch},
		{"opaque", "a/.wh..wh..opq", time.Time{}, epoch},
		{"not-a-whiteout", "a.wh./b", time.Time{}, now.Truncate(time.Second).UTC()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := &tar.Header{Name: tc.entry, Typeflag: tar.TypeReg, ModTime: now, AccessTime: now, ChangeTime: now, Uname: "u", Gname: "g"}
			Header(hdr, Options{ClampMtime: tc.clamp})
			if !hdr.ModTime.Equal(tc.want) || hdr.ModTime.Location() != time.UTC {
				t.Errorf("mtime %v, want %v UTC", hdr.ModTime, tc.want)
			}
			if !hdr.AccessTime.IsZero() || !hdr.ChangeTime.IsZero() || hdr.Uname != "" || hdr.Gname != "" {
				t.Errorf("header keeps %v %v %q %q", hdr.AccessTime, hdr.ChangeTime, hdr.Uname, hdr.Gname)
			}
		})
	}
}

func TestCopySameBytes(t *testing.T) {
	// Two streams of the same tree, written at different times by owners
	// with names, normalise to the same bytes.
	stream := func(at time.Time, uname string) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range []*tar.Header{
			{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1000, 5), AccessTime: at, Uname: uname, Format: tar.FormatPAX},
			{Name: "d/.wh.gone", Typeflag: tar.TypeReg, ModTime: at, AccessTime: at, ChangeTime: at, Format: tar.FormatPAX},
			{Name: "d/f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3, ModTime: time.Unix(2000, 0), ChangeTime: at, Uname: uname, PAXRecords: map[string]string{"SCHILY.xattr.user.a": "1"}},
		} {
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			if h.Size > 0 {
				tw.Write([]byte("abc"))
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := Copy(&out, &buf, Options{}, 0); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	a := stream(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC), "alice")
	b := stream(time.Date(2025, 6, 7, 8, 9, 10, 11, time.UTC), "bob")
	if !bytes.Equal(a, b) {
		t.Error("the same tree written at two times normalised to different bytes")
	}
}

func TestCopyCheck(t *testing.T) {
	// Check sees every header as read, and its error ends the copy there.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"a", "b", "c"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop at b")
	var seen []string
	check := func(h *tar.Header) error {
		seen = append(seen, h.Name)
		if h.Name == "b" {
			return stop
		}
		return nil
	}
	var out bytes.Buffer
	if err := Copy(&out, bytes.NewReader(buf.Bytes()), Options{Check: check}, 0); !errors.Is(err, stop) {
		t.Fatalf("Copy: %v, want the check's error", err)
	}
	if want := []string{"a", "b"}; !slices.Equal(seen, want) {
		t.Errorf("check saw %q, want %q", seen, want)
	}
	tr := tar.NewReader(&out)
	if h, err := tr.Next(); err != nil || h.Name != "a" {
		t.Errorf("first entry written: %v, %v; want a", h, err)
	}
	if h, err := tr.Next(); err == nil {
		t.Errorf("entry %s written after the check failed", h.Name)
	}
}
