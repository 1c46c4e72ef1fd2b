package layerexport

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"go.uber.org/goleak"
)

// errFull is what failingWriter returns once it is full.
var errFull = errors.New("device full")

// failingWriter accepts room bytes, then fails.
type failingWriter struct{ room int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) <= w.room {
		w.room -= len(p)
		return len(p), nil
	}
	n := w.room
	w.room = 0
	return n, errFull
}

// testTar is a tar stream of one file of size random bytes.
func testTar(t *testing.T, size int) []byte {
	t.Helper()
	data := make([]byte, size)
	rand.NewChaCha8([32]byte{3}).Read(data)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "f", Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A blob writer that fails (a full disk) fails the export with its error,
// wherever it fails: in the middle or while the compressor is closed. No
// compressor goroutine is left running.
func TestStreamWriterFails(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	src := testTar(t, 6<<20)
	for _, alg := range []Algorithm{None, Gzip, Zstd} {
		full, err := Stream(context.Background(), &bytes.Buffer{}, bytes.NewReader(src), Options{Algorithm: alg})
		if err != nil {
			t.Fatal(err)
		}
		for _, room := range []int{0, 1, 4096, 1 << 20, int(full.Size) / 2, int(full.Size) - 10, int(full.Size) - 1} {
			_, err := Stream(context.Background(), &failingWriter{room: room}, bytes.NewReader(src), Options{Algorithm: alg})
			if !errors.Is(err, errFull) {
				t.Errorf("%s, writer full after %d of %d bytes: %v, want its error", alg, room, full.Size, err)
			}
		}
	}
}

func TestCheckLevel(t *testing.T) {
	for _, tc := range []struct {
		alg   Algorithm
		level int
		ok    bool
	}{
		{None, 0, true}, {None, 42, true},
		{Gzip, 0, true}, {Gzip, 1, true}, {Gzip, 9, true}, {Gzip, -1, true}, {Gzip, -2, true},
		{Gzip, 10, false}, {Gzip, -3, false},
		{Zstd, 0, true}, {Zstd, 1, true}, {Zstd, 22, true},
		{Zstd, 23, false}, {Zstd, -1, false},
		{Algorithm(7), 0, false},
	} {
		err := CheckLevel(tc.alg, tc.level)
		if (err == nil) != tc.ok {
			t.Errorf("%s level %d: %v, want ok %v", tc.alg, tc.level, err, tc.ok)
		}
		if tc.ok {
			// A level CheckLevel takes makes a compressor.
			zw, err := newCompressor(io.Discard, Options{Algorithm: tc.alg, Level: tc.level})
			if err != nil {
				t.Errorf("%s level %d: %v", tc.alg, tc.level, err)
			} else if err := zw.Close(); err != nil {
				t.Errorf("%s level %d: closing: %v", tc.alg, tc.level, err)
			}
			continue
		}
		if tc.alg <= Zstd && !errors.Is(err, ErrInvalidLevel) {
			t.Errorf("%s level %d: %v, want ErrInvalidLevel", tc.alg, tc.level, err)
		}
		if _, err := Stream(context.Background(), io.Discard, bytes.NewReader(nil), Options{Algorithm: tc.alg, Level: tc.level}); err == nil {
			t.Errorf("%s level %d: Stream took it", tc.alg, tc.level)
		}
	}
}
