// Package layerexport turns a layer's uncompressed tar stream into a blob in
// one pass: the stream is normalised, hashed for its diffID, compressed,
// hashed again for the blob digest and counted, all as the bytes go by.
package layerexport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/bricklayer/bricklayer/internal/tarnorm"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/klauspost/readahead"
	digest "github.com/opencontainers/go-digest"
)

// Algorithm is a blob compression.
type Algorithm int

const (
	// None writes the tar stream as it is.
	None Algorithm = iota
	// Gzip compresses with parallel gzip (pgzip).
	Gzip
	// Zstd compresses with zstd.
	Zstd
)

// String names the algorithm as users write it.
func (a Algorithm) String() string {
	switch a {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("Algorithm(%d)", int(a))
}

// Compression parameters are fixed, not derived from GOMAXPROCS or timing,
// so that the same input always gives the same blob.
const (
	gzipBlockSize   = 1 << 20
	gzipBlocks      = 4
	zstdConcurrency = 2
	zstdWindowSize  = 4 << 20
	copyBufferSize  = 256 << 10
	fileBufferSize  = 256 << 10
	readAheadBlocks = 4
	readAheadSize   = 64 << 10
)

// Options say how a layer is exported.
type Options struct {
	// Algorithm is the compression of the blob.
	Algorithm Algorithm
	// Level is the compression level; 0 means the algorithm's default
	// (gzip: [DefaultGzipLevel], zstd: the encoder's default speed).
	Level int
	// Normalize is how the tar stream is rewritten; nil copies it unchanged.
	Normalize *tarnorm.Options
	// Follow, when set, reads the blob while [ToFile] writes it: it is
	// called in a goroutine of its own with a reader that returns the bytes
	// written so far, waits for more, and ends with io.EOF once the blob is
	// complete or with the export's error. It need not read to the end.
	// done gets the blob's digests once it is complete, and is closed
	// without them if the export fails. ToFile returns only once Follow
	// has returned.
	Follow func(blob io.Reader, done <-chan Digests)
	// Publish makes the file [ToFile] writes a destination's blob, as
	// containers/image writes one: readable by all (0644, not the
	// temporary file's 0600) and synced to disk before it is named, so
	// that a manifest written after it never names a blob that a crash
	// could leave short.
	Publish bool
}

// DefaultGzipLevel is the gzip level used when Options.Level is 0.
const DefaultGzipLevel = 4

// CheckLevel reports whether level is a compression level of a: gzip's run
// from -2 (Huffman coding only) to 9, zstd's from 1 to 22, and 0 is each
// one's default. None takes any level and ignores it.
func CheckLevel(a Algorithm, level int) error {
	lo, hi := 0, 0
	switch a {
	case None:
		return nil
	case Gzip:
		lo, hi = pgzip.HuffmanOnly, pgzip.BestCompression
	case Zstd:
		lo, hi = 1, 22
	default:
		return fmt.Errorf("%w: %s", ErrUnsupportedAlgorithm, a)
	}
	if level != 0 && (level < lo || level > hi) {
		return fmt.Errorf("%s level %d: %w (want %d to %d, or 0 for the default)", a, level, ErrInvalidLevel, lo, hi)
	}
	return nil
}

// Digests are what one pass over a layer learns.
type Digests struct {
	// DiffID is the digest of the uncompressed tar stream.
	DiffID digest.Digest
	// UncompressedSize is the length of the uncompressed tar stream.
	UncompressedSize int64
	// Digest is the digest of the blob (equal to DiffID for None).
	Digest digest.Digest
	// Size is the length of the blob.
	Size int64
}

// Stream reads the tar stream src to its end, and writes the blob to dst. The
// returned digests are valid only when the error is nil. dst is not closed.
// ctx is checked before every read of src.
func Stream(ctx context.Context, dst io.Writer, src io.Reader, opts Options) (Digests, error) {
	blobCounter := &countingWriter{}
	var blobDigester digest.Digester
	var compressor io.WriteCloser
	latch := &errLatch{}
	if opts.Algorithm == None {
		// The blob is the tar stream: one digest serves as both.
		compressor = nopCloser{io.MultiWriter(dst, blobCounter)}
	} else {
		blobDigester = digest.Canonical.Digester()
		latch.w = io.MultiWriter(dst, blobDigester.Hash(), blobCounter)
		var err error
		if compressor, err = newCompressor(latch, opts); err != nil {
			return Digests{}, err
		}
	}
	diffIDDigester := digest.Canonical.Digester()
	diffCounter := &countingWriter{}
	tarSink := io.MultiWriter(latchCheck{latch}, compressor, diffIDDigester.Hash(), diffCounter)

	err := copyTar(ctx, tarSink, src, opts.Normalize)
	// The compressor must be closed even on error: pgzip and zstd hold
	// goroutines until then.
	closeErr := compressor.Close()
	if err != nil {
		return Digests{}, err
	}
	if closeErr == nil {
		closeErr = latch.Err()
	}
	if closeErr != nil {
		return Digests{}, fmt.Errorf("finishing %s compression: %w", opts.Algorithm, closeErr)
	}
	d := Digests{
		DiffID:           diffIDDigester.Digest(),
		UncompressedSize: diffCounter.n,
		Digest:           diffIDDigester.Digest(),
		Size:             blobCounter.n,
	}
	if blobDigester != nil {
		d.Digest = blobDigester.Digest()
	}
	return d, nil
}

// copyTar copies the tar stream src to dst, normalised when norm is set,
// checking ctx before every read of src.
//
// src is read ahead by its own goroutine, a few blocks in advance. The
// store's diff comes through a pipe from the goroutine that walks the layer,
// and a pipe hands over one write at a time, so without a buffer between
// them the walk (opening files, reading xattrs) and this copy (hashing,
// writing the blob) wait for each other; with one an uncompressed export of
// the Debian rootfs takes 30% less time. copyTar returns once that goroutine
// has ended, which may wait for one read of src in flight.
func copyTar(ctx context.Context, dst io.Writer, src io.Reader, norm *tarnorm.Options) (err error) {
	ahead, err := readahead.NewReaderSize(&contextReader{ctx: ctx, r: src}, readAheadBlocks, readAheadSize)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := ahead.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if norm != nil {
		if err := tarnorm.Copy(dst, ahead, *norm, copyBufferSize); err != nil {
			return err
		}
		// The normalised stream ends at src's end-of-archive marker; src is
		// read to its end all the same, so that its source sees the end
		// (and may release what it holds) and its error, if any, is seen.
		_, err = io.Copy(io.Discard, ahead)
		return err
	}
	_, err = io.CopyBuffer(dst, ahead, make([]byte, copyBufferSize))
	return err
}

// Reader returns the tar stream src, normalised when norm is set, as a
// reader for a consumer that pulls (such as storage's PutLayer). The caller
// must Close it; Close stops the copy and waits for it to end.
func Reader(ctx context.Context, src io.Reader, norm *tarnorm.Options) *StreamReader {
	pr, pw := io.Pipe()
	r := &StreamReader{PipeReader: pr, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = copyTar(ctx, pw, src, norm)
		pw.CloseWithError(r.err)
	}()
	return r
}

// StreamReader is the stream Reader returns.
type StreamReader struct {
	*io.PipeReader
	done chan struct{}
	err  error // the copy's, set before done is closed
}

func (r *StreamReader) Close() error {
	err := r.PipeReader.Close()
	<-r.done
	return err
}

// Err returns, once Close has returned, the error that ended the copy: the
// cause of a consumer's failed read, which the consumer may report only as
// a short read. It is nil when the copy ended because the consumer closed
// the stream first.
func (r *StreamReader) Err() error {
	<-r.done
	if errors.Is(r.err, io.ErrClosedPipe) {
		return nil
	}
	return r.err
}

// TempPattern names the file [ToFile] writes until the blob is complete, as
// os.CreateTemp and filepath.Glob take it: what a killed export leaves.
const TempPattern = ".layer-*.partial"

// ToFile exports src into a new file in dir, named by the blob digest's hex
// value once it is complete. The file is created exclusively; on error no file
// is left behind. If a file of that name exists already it is kept (it holds
// the same bytes) and the new one is removed.
func ToFile(ctx context.Context, dir string, src io.Reader, opts Options) (d Digests, path string, err error) {
	f, err := os.CreateTemp(dir, TempPattern)
	if err != nil {
		return Digests{}, "", fmt.Errorf("creating temporary blob file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	var fw io.Writer = f
	var published *syncingFile
	if opts.Publish {
		published = newSyncingFile(f)
		defer published.stop() // before the file is closed
		fw = published
	}
	endFollow := func(error) {}
	if opts.Follow != nil {
		g := newGrowingFile(f)
		fw = g
		followed := make(chan struct{})
		done := make(chan Digests, 1)
		go func() {
			defer close(followed)
			opts.Follow(g.reader(), done)
		}()
		// The follower must be done before the file is closed.
		endFollow = func(err error) {
			if g.end(err) {
				if err == nil {
					done <- d
				}
				close(done)
			}
			<-followed
		}
		defer func() { endFollow(err) }()
	}
	bw := bufio.NewWriterSize(fw, fileBufferSize)
	if d, err = Stream(ctx, bw, src, opts); err != nil {
		return Digests{}, "", err
	}
	if err = bw.Flush(); err != nil {
		return Digests{}, "", fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	endFollow(nil)
	if opts.Publish {
		if err = f.Chmod(0o644); err != nil {
			return Digests{}, "", fmt.Errorf("making %s readable: %w", f.Name(), err)
		}
		if err = published.Sync(); err != nil {
			return Digests{}, "", fmt.Errorf("syncing %s: %w", f.Name(), err)
		}
	}
	if err = f.Close(); err != nil {
		return Digests{}, "", fmt.Errorf("closing %s: %w", f.Name(), err)
	}
	path = filepath.Join(dir, d.Digest.Encoded())
	if err = os.Rename(f.Name(), path); err != nil {
		return Digests{}, "", fmt.Errorf("naming blob %s: %w", d.Digest, err)
	}
	return d, path, nil
}

func newCompressor(w io.Writer, opts Options) (io.WriteCloser, error) {
	if err := CheckLevel(opts.Algorithm, opts.Level); err != nil {
		return nil, err
	}
	switch opts.Algorithm {
	case None:
		return nopCloser{w}, nil
	case Gzip:
		level := opts.Level
		if level == 0 {
			level = DefaultGzipLevel
		}
		zw, err := pgzip.NewWriterLevel(w, level)
		if err != nil {
			return nil, fmt.Errorf("gzip level %d: %w", level, err)
		}
		if err := zw.SetConcurrency(gzipBlockSize, gzipBlocks); err != nil {
			return nil, fmt.Errorf("configuring gzip: %w", err)
		}
		return zw, nil
	case Zstd:
		// A 4 MiB window, not the encoder's 8 MiB, halves each encoder's
		// buffers: layers exported at once under the CLI's soft heap limit
		// then no longer keep the garbage collector busy, for blobs 0.3%
		// larger. Not WithLowerEncoderMem: it halves zstd's speed for no
		// gain in peak RSS. Nor WithConcurrentBlocks: it triples RSS.
		zopts := []zstd.EOption{zstd.WithEncoderConcurrency(zstdConcurrency), zstd.WithWindowSize(zstdWindowSize)}
		if opts.Level != 0 {
			zopts = append(zopts, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(opts.Level)))
		}
		zw, err := zstd.NewWriter(w, zopts...)
		if err != nil {
			return nil, fmt.Errorf("zstd level %d: %w", opts.Level, err)
		}
		return zw, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupportedAlgorithm, opts.Algorithm)
}

var (
	// ErrUnsupportedAlgorithm is returned for an Algorithm this package does not know.
	ErrUnsupportedAlgorithm = errors.New("unsupported compression")
	// ErrInvalidLevel is returned for a level its Algorithm does not have.
	ErrInvalidLevel = errors.New("invalid compression level")
)

// errLatch passes writes to w until one fails, then keeps that error and
// swallows the writes that follow. A compressor writes to a latch, not to
// the blob: pgzip's Close returns at once when its writer has failed and
// leaves a goroutine running for good, so it must never see a failure.
// [latchCheck] reports the error to the tar copy instead.
type errLatch struct {
	w   io.Writer
	mu  sync.Mutex // pgzip writes from a goroutine of its own
	err error
}

func (l *errLatch) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return len(p), nil
	}
	n, err := l.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	l.err = err
	return len(p), nil
}

// Err is the first error of the latch's writer.
func (l *errLatch) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// latchCheck fails writes once its latch has caught an error, so that the
// copy feeding the compressor stops.
type latchCheck struct{ l *errLatch }

func (c latchCheck) Write(p []byte) (int, error) {
	if err := c.l.Err(); err != nil {
		return 0, err
	}
	return len(p), nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// contextReader fails reads once its context is done.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
