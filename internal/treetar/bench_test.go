package treetar

import (
	"flag"
	"io"
	"path/filepath"
	"testing"

	"github.com/bricklayer/bricklayer/internal/benchtree"
	"go.podman.io/storage/pkg/archive"
)

var (
	benchTree = flag.String("bench.tree", "", "directory to tar instead of a generated tree (such as a peer.sh workload's rootfs)")
	benchMiB  = flag.Int("bench.mib", 64, "size of the generated tree in MiB")
)

// BenchmarkTar tars one tree into io.Discard: "treetar" with this package,
// "storage" with containers/storage's archive.TarWithOptions, which the
// exports used before, and "floor" with benchtree.Tar (archive/tar over
// filepath.WalkDir, no extended attributes).
func BenchmarkTar(b *testing.B) {
	root := *benchTree
	if root == "" {
		root = filepath.Join(b.TempDir(), "tree")
		if _, err := benchtree.Write(root, benchtree.Options{Size: int64(*benchMiB) << 20, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
	size, err := benchtree.Tar(io.Discard, root)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		open func() (io.ReadCloser, error)
	}{
		{"treetar", func() (io.ReadCloser, error) { return Reader(b.Context(), root, Options{}), nil }},
		{"storage", func() (io.ReadCloser, error) {
			return archive.TarWithOptions(root, &archive.TarOptions{Compression: archive.Uncompressed})
		}},
		{"floor", func() (io.ReadCloser, error) {
			pr, pw := io.Pipe()
			go func() {
				_, err := benchtree.Tar(pw, root)
				pw.CloseWithError(err)
			}()
			return pr, nil
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			buf := make([]byte, 256<<10)
			for b.Loop() {
				rc, err := tc.open()
				if err != nil {
					b.Fatal(err)
				}
				_, err = io.CopyBuffer(io.Discard, rc, buf)
				rc.Close()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
