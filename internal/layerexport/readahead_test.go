package layerexport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/bricklayer/bricklayer/internal/tarnorm"
	"go.uber.org/goleak"
)

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// blockingWriter holds its first non-empty Write until release is closed, and says
// on started how many bytes that Write carries.
type blockingWriter struct {
	started chan int
	release chan struct{}
	first   bool
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	if !w.first && len(p) > 0 {
		w.first = true
		w.started <- len(p)
		<-w.release
	}
	return len(p), nil
}

// The source is read ahead of the blob writer: while the writer is held on
// its first write, the source goes on being read.
func TestStreamReadsAhead(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, norm := range []bool{false, true} {
		src := &countingReader{r: bytes.NewReader(testTar(t, 4<<20))}
		w := &blockingWriter{started: make(chan int, 1), release: make(chan struct{})}
		opts := Options{Algorithm: None}
		if norm {
			opts.Normalize = &tarnorm.Options{}
		}
		errc := make(chan error, 1)
		go func() {
			_, err := Stream(context.Background(), w, src, opts)
			errc <- err
		}()
		first := <-w.started
		want := int64(first + readAheadSize)
		deadline := time.Now().Add(5 * time.Second)
		for src.n.Load() < want && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got := src.n.Load(); got < want {
			t.Errorf("normalize %v: %d bytes read from the source while the writer held its first %d, want at least %d", norm, got, first, want)
		}
		close(w.release)
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// A source that fails fails the export with its error, wherever it fails,
// before, at or after a read-ahead block's end, and the read-ahead
// goroutine is gone when Stream returns.
func TestStreamSourceFails(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	tarball := testTar(t, 1<<20)
	for _, alg := range []Algorithm{None, Gzip} {
		for _, norm := range []bool{false, true} {
			for _, at := range []int{0, 1, 511, readAheadSize - 1, readAheadSize, readAheadSize + 1, 3*readAheadSize + 7, len(tarball) - 1100} {
				src := io.MultiReader(bytes.NewReader(tarball[:at]), iotest.ErrReader(errSourceBroken))
				opts := Options{Algorithm: alg}
				if norm {
					opts.Normalize = &tarnorm.Options{}
				}
				if _, err := Stream(context.Background(), io.Discard, src, opts); !errors.Is(err, errSourceBroken) {
					t.Errorf("%s, normalize %v, source failing after %d bytes: %v, want its error", alg, norm, at, err)
				}
			}
		}
	}
}

// A normalised export reads its source to the end, past the end-of-archive
// marker: a source that holds something until then (the store's lock, for
// a layer's diff) is released as soon as the tar has been read, and an
// error at its very end is not lost.
func TestStreamReadsSourceToItsEnd(t *testing.T) {
	tarball := testTar(t, 1<<20)
	trailer := bytes.Repeat([]byte{0}, 10240) // padding after the marker, as tar writers leave
	src := &countingReader{r: io.MultiReader(bytes.NewReader(tarball), bytes.NewReader(trailer))}
	if _, err := Stream(context.Background(), io.Discard, src, Options{Algorithm: None, Normalize: &tarnorm.Options{}}); err != nil {
		t.Fatal(err)
	}
	if got, want := src.n.Load(), int64(len(tarball)+len(trailer)); got != want {
		t.Errorf("read %d bytes of the source, want all %d", got, want)
	}

	errEnd := errors.New("failed after the last entry")
	failing := io.MultiReader(bytes.NewReader(tarball), iotest.ErrReader(errEnd))
	if _, err := Stream(context.Background(), io.Discard, failing, Options{Algorithm: None, Normalize: &tarnorm.Options{}}); !errors.Is(err, errEnd) {
		t.Errorf("a source failing after its end-of-archive marker: %v, want its error", err)
	}
}
