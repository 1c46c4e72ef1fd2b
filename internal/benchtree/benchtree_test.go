package benchtree

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeTree(t *testing.T, opts Options) (string, Stats) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "tree")
	st, err := Write(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	return root, st
}

func tarDigest(t *testing.T, root string) ([32]byte, []byte) {
	t.Helper()
	var buf bytes.Buffer
	n, err := Tar(&buf, root)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("Tar returned length %d, wrote %d bytes", n, buf.Len())
	}
	return sha256.Sum256(buf.Bytes()), buf.Bytes()
}

func TestWriteIsDeterministic(t *testing.T) {
	opts := Options{Size: 3 << 20, Seed: 7}
	a, sa := writeTree(t, opts)
	b, sb := writeTree(t, opts)
	if sa != sb {
		t.Errorf("same options, stats %+v then %+v", sa, sb)
	}
	da, _ := tarDigest(t, a)
	db, _ := tarDigest(t, b)
	if da != db {
		t.Errorf("same options, tar digests %x and %x", da, db)
	}
	c, _ := writeTree(t, Options{Size: 3 << 20, Seed: 8})
	if dc, _ := tarDigest(t, c); dc == da {
		t.Errorf("seeds 7 and 8 gave the same tree")
	}
}

func TestWriteMix(t *testing.T) {
	const size = 16 << 20
	root, st := writeTree(t, Options{Size: size, Seed: 1})
	if st.Bytes < size*9/10 || st.Bytes > size*11/10 {
		t.Errorf("content %d bytes, want about %d", st.Bytes, size)
	}
	if st.Symlinks == 0 || st.Hardlinks == 0 || st.Dirs < 3 || st.Files < 100 {
		t.Errorf("stats %+v: want symlinks, hard links, directories and many files", st)
	}
	_, stream := tarDigest(t, root)
	tr := tar.NewReader(bytes.NewReader(stream))
	kinds := map[string]bool{}
	var links, regular int
	var bytesIn int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.ModTime.Unix() != 1700000000 {
			t.Errorf("%s: mtime %v, want the fixed epoch", hdr.Name, hdr.ModTime)
		}
		switch hdr.Typeflag {
		case tar.TypeLink:
			links++
		case tar.TypeReg:
			regular++
			bytesIn += hdr.Size
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(hdr.Name, "big/") {
				kinds[strings.TrimRight(strings.TrimSuffix(filepath.Base(hdr.Name), ".img"), "0123456789")] = true
				checkKind(t, hdr.Name, data)
			}
		}
	}
	if links != st.Hardlinks || regular != st.Files || bytesIn != st.Bytes {
		t.Errorf("tar holds %d files (%d bytes) and %d hard links; stats %+v", regular, bytesIn, links, st)
	}
	for _, k := range []string{"rand", "text", "low", "mixed", "zero"} {
		if !kinds[k] {
			t.Errorf("no large %s file", k)
		}
	}
}

// checkKind checks that a large file compresses as its kind should.
func checkKind(t *testing.T, name string, data []byte) {
	t.Helper()
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
	zw.Write(data)
	zw.Close()
	ratio := float64(z.Len()) / float64(len(data))
	want := map[string][2]float64{"rand": {0.99, 1.01}, "text": {0.2, 0.5}, "low": {0.5, 0.75}, "mixed": {0.45, 0.55}, "zero": {0, 0.01}}
	kind := strings.TrimRight(strings.TrimSuffix(filepath.Base(name), ".img"), "0123456789")
	if r, ok := want[kind]; ok && (ratio < r[0] || ratio > r[1]) {
		t.Errorf("%s: gzip ratio %.3f, want %.2f-%.2f", name, ratio, r[0], r[1])
	}
}

func TestWriteRefusesExistingFiles(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "big"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "big", "rand0.img"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(root, Options{Size: 1 << 20}); err == nil {
		t.Error("Write over an existing file succeeded")
	}
}
