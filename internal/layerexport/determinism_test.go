package layerexport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// determinismInput is a few MiB that compress to several pgzip blocks and
// many zstd blocks: runs of random bytes, of repeated text and of zeros.
func determinismInput(size int) []byte {
	rng := rand.New(rand.NewPCG(7, 11))
	out := make([]byte, 0, size)
	text := []byte("the quick brown fox jumps over the lazy dog 0123456789\n")
	for len(out) < size {
		n := 1 + rng.IntN(64<<10)
		switch rng.IntN(3) {
		case 0:
			for range n {
				out = append(out, byte(rng.UintN(256)))
			}
		case 1:
			for len(out) < cap(out) && n > 0 {
				k := min(n, len(text))
				out = append(out, text[:k]...)
				n -= k
			}
		default:
			out = append(out, make([]byte, n)...)
		}
	}
	return out[:size]
}

// choppyReader returns its data in reads of varying length, so that the
// compressors see different Write boundaries from run to run.
type choppyReader struct {
	data []byte
	rng  *rand.Rand
}

func (r *choppyReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.data), 1+r.rng.IntN(300<<10))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// withGOMAXPROCS runs fn with GOMAXPROCS set to n.
func withGOMAXPROCS(n int, fn func()) {
	old := runtime.GOMAXPROCS(n)
	defer runtime.GOMAXPROCS(old)
	fn()
}

// TestStreamDeterministic checks that Stream gives the same blob for the
// same input whatever GOMAXPROCS is and however the input is split into
// reads: the compressors' parameters are pinned, not derived from the
// machine or from timing.
func TestStreamDeterministic(t *testing.T) {
	input := determinismInput(6 << 20)
	for _, tc := range []struct {
		alg   Algorithm
		level int
	}{
		{None, 0}, {Gzip, 0}, {Gzip, 1}, {Gzip, 9}, {Zstd, 0}, {Zstd, 1}, {Zstd, 11},
	} {
		t.Run(fmt.Sprintf("%s-%d", tc.alg, tc.level), func(t *testing.T) {
			var first []byte
			var firstDigests Digests
			for i, procs := range []int{1, 8, 1, 8} {
				var blob bytes.Buffer
				var d Digests
				var err error
				withGOMAXPROCS(procs, func() {
					src := io.Reader(bytes.NewReader(input))
					if i >= 2 {
						src = &choppyReader{data: input, rng: rand.New(rand.NewPCG(uint64(i), 3))}
					}
					d, err = Stream(context.Background(), &blob, src, Options{Algorithm: tc.alg, Level: tc.level})
				})
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first, firstDigests = blob.Bytes(), d
					continue
				}
				if !bytes.Equal(blob.Bytes(), first) || d != firstDigests {
					t.Errorf("run %d (GOMAXPROCS %d): blob %s (%d bytes), first run %s (%d bytes)", i, procs, d.Digest, d.Size, firstDigests.Digest, firstDigests.Size)
				}
			}
		})
	}
}

// TestCompressorConcurrency records what the pinned parameters rely on:
// pgzip's output depends on its block size but not on how many blocks are
// compressed at once, and zstd's does not depend on the encoder's
// concurrency. Should a library update break either, this test says which
// knob moved, and the constants in export.go must be pinned to one value.
func TestCompressorConcurrency(t *testing.T) {
	input := determinismInput(6 << 20)
	t.Run("pgzip", func(t *testing.T) {
		var want []byte
		for _, blocks := range []int{1, gzipBlocks, 16} {
			var buf bytes.Buffer
			zw, err := pgzip.NewWriterLevel(&buf, DefaultGzipLevel)
			if err != nil {
				t.Fatal(err)
			}
			if err := zw.SetConcurrency(gzipBlockSize, blocks); err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(zw, &choppyReader{data: input, rng: rand.New(rand.NewPCG(uint64(blocks), 1))}); err != nil {
				t.Fatal(err)
			}
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			if want == nil {
				want = buf.Bytes()
			} else if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("pgzip with %d blocks at once: %d bytes, differs from 1 block at once (%d bytes)", blocks, buf.Len(), len(want))
			}
		}
	})
	t.Run("zstd", func(t *testing.T) {
		for _, level := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression} {
			var want []byte
			for _, conc := range []int{1, zstdConcurrency, 8} {
				var buf bytes.Buffer
				zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(conc), zstd.WithEncoderLevel(level))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.Copy(zw, &choppyReader{data: input, rng: rand.New(rand.NewPCG(uint64(conc), 2))}); err != nil {
					t.Fatal(err)
				}
				if err := zw.Close(); err != nil {
					t.Fatal(err)
				}
				if want == nil {
					want = buf.Bytes()
				} else if !bytes.Equal(buf.Bytes(), want) {
					t.Errorf("zstd %s with concurrency %d: %d bytes, differs from concurrency 1 (%d bytes)", level, conc, buf.Len(), len(want))
				}
			}
		}
	})
}
