package treetar

import (
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/bricklayer/bricklayer/internal/benchtree"
	"go.podman.io/storage/pkg/archive"
	"go.podman.io/storage/pkg/idtools"
)

var (
	benchTree = flag.String("bench.tree", "", "directory to tar instead of a generated tree (such as a peer.sh workload's rootfs)")
	benchMiB  = flag.Int("bench.mib", 64, "size of the generated tree in MiB")
)

// benchRoot returns the tree the benchmarks read (-bench.tree, else a
// generated benchtree of -bench.mib MiB) and the length of its plain tar.
func benchRoot(b *testing.B) (string, int64) {
	b.Helper()
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
	return root, size
}

// readerCase is one way of making a tar stream.
type readerCase struct {
	name string
	open func() (io.ReadCloser, error)
}

// benchReaders reads each case's stream into io.Discard, size bytes a run.
func benchReaders(b *testing.B, size int64, cases []readerCase) {
	for _, tc := range cases {
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

// BenchmarkTar tars one tree into io.Discard: "treetar" with this package,
// "storage" with containers/storage's archive.TarWithOptions, which the
// exports used before, and "floor" with benchtree.Tar (archive/tar over
// filepath.WalkDir, no extended attributes).
func BenchmarkTar(b *testing.B) {
	root, size := benchRoot(b)
	benchReaders(b, size, []readerCase{
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
	})
}

// BenchmarkTarChanges writes a layer's changes into io.Discard, the whole
// tree listed as added (as a layer that adds it to an image's tree):
// "treetar" with WriteChanges, "storage" with containers/storage's
// archive.ExportChanges, which the exports used before.
func BenchmarkTarChanges(b *testing.B) {
	root, size := benchRoot(b)
	changes, err := Changes(b.Context(), root, b.TempDir(), ChangesOptions{})
	if err != nil {
		b.Fatal(err)
	}
	benchReaders(b, size, []readerCase{
		{"treetar", func() (io.ReadCloser, error) { return ChangesReader(b.Context(), root, changes, Options{}), nil }},
		{"storage", func() (io.ReadCloser, error) { return archive.ExportChanges(root, changes, nil, nil) }},
	})
}

// BenchmarkChanges compares a copy of a tree, with one file added, with
// the tree (as the vfs driver compares a container's layer with its
// parent's): "treetar" with Changes, "storage" with containers/storage's
// archive.ChangesDirs, which the vfs driver's diff uses.
func BenchmarkChanges(b *testing.B) {
	root, _ := benchRoot(b)
	layer := filepath.Join(b.TempDir(), "layer")
	if out, err := exec.Command("cp", "-a", root, layer).CombinedOutput(); err != nil {
		b.Fatalf("cp -a: %v: %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(layer, "added"), []byte("added"), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		list func() ([]archive.Change, error)
	}{
		{"treetar", func() ([]archive.Change, error) { return Changes(b.Context(), layer, root, ChangesOptions{}) }},
		{"storage", func() ([]archive.Change, error) {
			return archive.ChangesDirs(layer, &idtools.IDMappings{}, root, &idtools.IDMappings{})
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				changes, err := tc.list()
				if err != nil {
					b.Fatal(err)
				}
				if len(changes) != 1 {
					b.Fatalf("%d changes, want 1: %v", len(changes), changes)
				}
			}
		})
	}
}
