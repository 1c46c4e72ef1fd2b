package layerexport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"go.uber.org/goleak"
)

// A follower reads the blob exactly as ToFile writes it, and ToFile waits
// for it.
func TestToFileFollow(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	src := testTar(t, 3<<20)
	for _, alg := range []Algorithm{None, Gzip, Zstd} {
		var followed []byte
		var followErr error
		var told Digests
		opts := Options{Algorithm: alg, Follow: func(r io.Reader, done <-chan Digests) {
			followed, followErr = io.ReadAll(r)
			told = <-done
		}}
		d, path, err := ToFile(context.Background(), t.TempDir(), bytes.NewReader(src), opts)
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if followErr != nil {
			t.Errorf("%s: the follower read %v", alg, followErr)
		}
		file, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(followed, file) {
			t.Errorf("%s: the follower read %d bytes, unlike the %d-byte file", alg, len(followed), len(file))
		}
		if got := digest.FromBytes(followed); got != d.Digest {
			t.Errorf("%s: the follower's bytes have digest %s, the export says %s", alg, got, d.Digest)
		}
		if told != d {
			t.Errorf("%s: the follower was told %+v, ToFile returned %+v", alg, told, d)
		}
	}
}

// A follower that stops reading early does not hold up or fail the export.
func TestToFileFollowerStops(t *testing.T) {
	src := testTar(t, 3<<20)
	d, path, err := ToFile(context.Background(), t.TempDir(), bytes.NewReader(src), Options{Algorithm: Gzip, Follow: func(r io.Reader, _ <-chan Digests) {
		io.ReadFull(r, make([]byte, 10))
	}})
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(file); got != d.Digest {
		t.Errorf("the blob file has digest %s, the export says %s", got, d.Digest)
	}
}

// errSource is a tar stream that fails after a few bytes.
type errSource struct{ n int }

var errSourceBroken = errors.New("source broken")

func (s *errSource) Read(p []byte) (int, error) {
	if s.n <= 0 {
		return 0, errSourceBroken
	}
	n := min(len(p), s.n)
	clear(p[:n])
	s.n -= n
	return n, nil
}

// When the export fails, the follower's reads end with the export's error,
// not io.EOF, so that an upload fed by it is not completed; no file is left.
func TestToFileFollowerSeesFailure(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, alg := range []Algorithm{None, Gzip, Zstd} {
		dir := t.TempDir()
		var followErr error
		toldDigests := true
		_, _, err := ToFile(context.Background(), dir, &errSource{n: 2 << 20}, Options{Algorithm: alg, Follow: func(r io.Reader, done <-chan Digests) {
			_, followErr = io.Copy(io.Discard, r)
			_, toldDigests = <-done
		}})
		if toldDigests {
			t.Errorf("%s: the follower of a failed export was given digests", alg)
		}
		if !errors.Is(err, errSourceBroken) {
			t.Errorf("%s: export error %v, want %v", alg, err, errSourceBroken)
		}
		if !errors.Is(followErr, errSourceBroken) {
			t.Errorf("%s: the follower read to %v, want %v", alg, followErr, errSourceBroken)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%s: a failed export left %d files", alg, len(entries))
		}
	}
}

// A published blob is readable by all, holds the export whole, and is
// synced in the background as it grows (the source is longer than one
// sync chunk); a failed one leaves nothing, and no goroutine.
func TestToFilePublishes(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	src := testTar(t, syncChunk+(5<<20))
	dir := t.TempDir()
	d, path, err := ToFile(context.Background(), dir, bytes.NewReader(src), Options{Algorithm: None, Publish: true})
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o644 {
		t.Errorf("published blob has mode %v, want 0644", info.Mode().Perm())
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(file); got != d.Digest || !bytes.Equal(file, src) {
		t.Errorf("published blob has digest %s (%d bytes), want %s (%d bytes)", got, len(file), d.Digest, len(src))
	}

	failed := t.TempDir()
	if _, _, err := ToFile(context.Background(), failed, &errSource{n: syncChunk + (1 << 20)}, Options{Algorithm: None, Publish: true}); !errors.Is(err, errSourceBroken) {
		t.Errorf("export error %v, want %v", err, errSourceBroken)
	}
	if entries, _ := os.ReadDir(failed); len(entries) != 0 {
		t.Errorf("a failed published export left %d files", len(entries))
	}
}
