package layerexport

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/bricklayer/bricklayer/internal/benchtree"
	"github.com/bricklayer/bricklayer/internal/tarnorm"
)

// The benchmarks here measure the export pipeline alone, on a tar stream
// held in memory: no disk read, no storage. BenchmarkStream/*/raw is the
// ceiling of compression and hashing; */normalized adds what a commit adds
// (tarnorm). Run with
//
//	go test -run '^$' -bench . -benchmem ./internal/layerexport
//
// and -bench.mib to change the size of the tree.

var benchMiB = flag.Int("bench.mib", 64, "MiB of file content in the benchmarks' tree")

var benchTar = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "layerexport-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	root := filepath.Join(dir, "tree")
	if _, err := benchtree.Write(root, benchtree.Options{Size: int64(*benchMiB) << 20, Seed: 1}); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := benchtree.Tar(&buf, root); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
})

// loadBenchTar returns the benchmarks' tar stream, made on first use.
func loadBenchTar(b *testing.B) []byte {
	b.Helper()
	data, err := benchTar()
	if err != nil {
		b.Fatalf("making the benchmark tree: %v", err)
	}
	return data
}

var benchAlgorithms = []Algorithm{None, Gzip, Zstd}

// BenchmarkStream exports an in-memory tar stream to io.Discard.
func BenchmarkStream(b *testing.B) {
	data := loadBenchTar(b)
	ctx := context.Background()
	for _, alg := range benchAlgorithms {
		for _, norm := range []struct {
			name string
			opts *tarnorm.Options
		}{{"raw", nil}, {"normalized", &tarnorm.Options{}}} {
			b.Run(alg.String()+"/"+norm.name, func(b *testing.B) {
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				var d Digests
				for b.Loop() {
					var err error
					if d, err = Stream(ctx, io.Discard, bytes.NewReader(data), Options{Algorithm: alg, Normalize: norm.opts}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(d.Size)/float64(d.UncompressedSize), "out/in")
			})
		}
	}
}

// BenchmarkToFile exports an in-memory tar stream, normalised, into a blob
// file, as a commit to an OCI layout does; the file is removed between
// iterations, outside the timer.
func BenchmarkToFile(b *testing.B) {
	data := loadBenchTar(b)
	ctx := context.Background()
	for _, alg := range benchAlgorithms {
		b.Run(alg.String(), func(b *testing.B) {
			dir := b.TempDir()
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				_, path, err := ToFile(ctx, dir, bytes.NewReader(data), Options{Algorithm: alg, Normalize: &tarnorm.Options{}})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := os.Remove(path); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
