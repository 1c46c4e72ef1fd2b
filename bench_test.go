package bricklayer

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/bricklayer/bricklayer/internal/benchtree"
	"github.com/bricklayer/bricklayer/internal/layerexport"
	"github.com/bricklayer/bricklayer/internal/tarnorm"
	"go.podman.io/image/v5/directory"
	dockerref "go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/oci/layout"
	is "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
	"go.podman.io/storage/pkg/archive"
	"golang.org/x/sys/unix"
)

// The commit benchmarks time Builder.Commit of a container holding a
// benchtree (-bench.mib MiB of mixed content) per destination and
// compression, and, beside them, the in-process floor: the same tree walked,
// tarred, compressed and hashed in this process without containers/image or
// storage. Every benchmark sets its bytes to the uncompressed length of the
// layers exported, so MB/s ratios are time ratios. Run with
//
//	go test -run '^$' -bench 'Commit' -benchtime 5x . -bench.mib=64
//
// The docker destination needs docker-registry on PATH; it is skipped
// otherwise.

var (
	benchMiB  = flag.Int("bench.mib", 64, "MiB of file content in the commit benchmarks' trees")
	benchTree = flag.String("bench.tree", "", "directory that BenchmarkCommitFloor walks instead of a generated tree (such as a peer.sh workload)")
)

// benchEnv is a store and a SystemContext whose big temporary files go to a
// private directory.
type benchEnv struct {
	ctx   context.Context
	store storage.Store
	sys   *types.SystemContext
	cache string // the blob info cache directory, emptied between commits
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	env := &benchEnv{ctx: context.Background(), store: newTestStore(b), cache: b.TempDir()}
	tmp := b.TempDir()
	b.Setenv("TMPDIR", tmp)
	env.sys = &types.SystemContext{BigFilesTemporaryDir: tmp, BlobInfoCacheDir: env.cache}
	return env
}

// filledBuilder makes a builder from image from (Scratch or a stored image)
// and writes a benchtree of size bytes and seed under sub in it.
func (env *benchEnv) filledBuilder(b *testing.B, from, name, sub string, size int64, seed uint64) *Builder {
	b.Helper()
	bl, err := NewBuilder(env.ctx, env.store, BuilderOptions{FromImage: from, Container: name})
	if err != nil {
		b.Fatal(err)
	}
	mp, err := bl.Mount()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := benchtree.Write(filepath.Join(mp, sub), benchtree.Options{Size: size, Seed: seed}); err != nil {
		b.Fatal(err)
	}
	if err := bl.Unmount(); err != nil {
		b.Fatal(err)
	}
	return bl
}

// newLayerBytes is the length of the normalised tar stream of the
// container's own layer: what a commit exports for it.
func (env *benchEnv) newLayerBytes(b *testing.B, bl *Builder) int64 {
	b.Helper()
	ctr, err := env.store.Container(bl.ContainerID())
	if err != nil {
		b.Fatal(err)
	}
	diff, err := env.store.Diff("", ctr.LayerID, &storage.DiffOptions{Compression: new(archive.Uncompressed)})
	if err != nil {
		b.Fatal(err)
	}
	defer diff.Close()
	d, err := layerexport.Stream(env.ctx, io.Discard, diff, layerexport.Options{Algorithm: layerexport.None, Normalize: &tarnorm.Options{}})
	if err != nil {
		b.Fatal(err)
	}
	return d.UncompressedSize
}

// resetCache empties the blob info cache, so that every commit is a first
// one, and flushes dirty pages, so that one commit's writes are not paid by
// the next.
func (env *benchEnv) reset(b *testing.B) {
	b.Helper()
	if err := os.RemoveAll(env.cache); err != nil {
		b.Fatal(err)
	}
	if err := os.Mkdir(env.cache, 0o700); err != nil {
		b.Fatal(err)
	}
	unix.Sync()
}

// benchDest is a destination of the commit benchmarks.
type benchDest struct {
	name string
	// compressions are those benchmarked; containers-storage stores layers
	// uncompressed whatever the option says.
	compressions []Compression
	// open returns the reference to commit to, the SystemContext, and a
	// function that empties the destination after a commit.
	open func(b *testing.B, env *benchEnv) (types.ImageReference, *types.SystemContext, func(CommitResult))
}

var allCompressions = []Compression{CompressionNone, CompressionGzip, CompressionZstd}

var benchDests = []benchDest{
	{"oci", allCompressions, func(b *testing.B, env *benchEnv) (types.ImageReference, *types.SystemContext, func(CommitResult)) {
		dir := filepath.Join(b.TempDir(), "layout")
		ref, err := layout.NewReference(dir, "bench")
		if err != nil {
			b.Fatal(err)
		}
		return ref, env.sys, func(CommitResult) { removeAll(b, dir) }
	}},
	{"containers-storage", []Compression{CompressionNone}, func(b *testing.B, env *benchEnv) (types.ImageReference, *types.SystemContext, func(CommitResult)) {
		ref := benchStoreRef(b, env.store, "localhost/bench:latest")
		return ref, env.sys, func(res CommitResult) {
			if _, err := env.store.DeleteImage(res.ImageID, true); err != nil {
				b.Fatal(err)
			}
		}
	}},
	{"dir", allCompressions, func(b *testing.B, env *benchEnv) (types.ImageReference, *types.SystemContext, func(CommitResult)) {
		dir := filepath.Join(b.TempDir(), "dir")
		ref, err := directory.NewReference(dir)
		if err != nil {
			b.Fatal(err)
		}
		return ref, env.sys, func(CommitResult) { removeAll(b, dir) }
	}},
	{"docker", allCompressions, func(b *testing.B, env *benchEnv) (types.ImageReference, *types.SystemContext, func(CommitResult)) {
		reg := startRegistry(b, b.TempDir())
		addr, storageDir := reg.addr, reg.dir
		ref, err := dockerref.ParseReference("//" + addr + "/bench/work:latest")
		if err != nil {
			b.Fatal(err)
		}
		sys := *env.sys
		sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
		sys.AuthFilePath = filepath.Join(b.TempDir(), "auth.json")
		return ref, &sys, func(CommitResult) { removeAll(b, filepath.Join(storageDir, "docker")) }
	}},
}

func benchStoreRef(b *testing.B, store storage.Store, name string) types.ImageReference {
	b.Helper()
	ref, err := is.Transport.ParseStoreReference(store, name)
	if err != nil {
		b.Fatal(err)
	}
	return ref
}

func removeAll(b *testing.B, path string) {
	b.Helper()
	if err := os.RemoveAll(path); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCommit commits one container holding a single new layer to each
// destination with each compression. Setup (the store, the tree, the
// registry) and emptying the destination between commits are untimed.
func BenchmarkCommit(b *testing.B) {
	env := newBenchEnv(b)
	bl := env.filledBuilder(b, Scratch, "bench", "", int64(*benchMiB)<<20, 1)
	bytes := env.newLayerBytes(b, bl)
	for _, dest := range benchDests {
		for _, c := range dest.compressions {
			b.Run(dest.name+"/"+c.String(), func(b *testing.B) {
				ref, sys, empty := dest.open(b, env)
				benchCommit(b, env, bl, ref, CommitOptions{Compression: c, SystemContext: sys}, bytes, empty)
			})
		}
	}
}

// BenchmarkCommitBase4 commits a container whose base image has four
// layers to an OCI layout: five layers exported, each a fifth of
// -bench.mib. The base image is stored uncompressed, as buildah and podman
// store what they build. oci-again commits into a layout that holds the
// base layers already.
func BenchmarkCommitBase4(b *testing.B) {
	env := newBenchEnv(b)
	size := int64(*benchMiB) << 20 / 5
	from := Scratch
	var bytes int64
	for i := 1; i <= 4; i++ {
		bl := env.filledBuilder(b, from, fmt.Sprintf("base%d", i), fmt.Sprintf("l%d", i), size, uint64(i))
		bytes += env.newLayerBytes(b, bl)
		from = fmt.Sprintf("localhost/base:%d", i)
		if _, err := bl.Commit(env.ctx, benchStoreRef(b, env.store, from), CommitOptions{Compression: CompressionNone, SystemContext: env.sys}); err != nil {
			b.Fatal(err)
		}
		if err := bl.Delete(); err != nil {
			b.Fatal(err)
		}
	}
	bl := env.filledBuilder(b, from, "bench", "l5", size, 5)
	bytes += env.newLayerBytes(b, bl)
	oci := benchDests[0]
	for _, c := range oci.compressions {
		b.Run(oci.name+"/"+c.String(), func(b *testing.B) {
			ref, sys, empty := oci.open(b, env)
			benchCommit(b, env, bl, ref, CommitOptions{Compression: c, SystemContext: sys}, bytes, empty)
		})
	}
	// Again into a layout that holds an earlier commit's blobs, which an
	// untimed commit puts there first: the base layers are read back from
	// the layout, only the new one is compressed.
	for _, c := range []Compression{CompressionGzip, CompressionZstd} {
		b.Run("oci-again/"+c.String(), func(b *testing.B) {
			ref, sys, _ := oci.open(b, env)
			opts := CommitOptions{Compression: c, SystemContext: sys}
			if _, err := bl.Commit(env.ctx, ref, opts); err != nil {
				b.Fatal(err)
			}
			benchCommit(b, env, bl, ref, opts, bytes, func(CommitResult) {})
		})
	}
	// Into an emptied layout each time, with a blob cache that an untimed
	// commit fills first: the base layers' blobs are taken from the cache.
	for _, c := range []Compression{CompressionGzip, CompressionZstd} {
		b.Run("oci-cached/"+c.String(), func(b *testing.B) {
			ref, sys, empty := oci.open(b, env)
			opts := CommitOptions{Compression: c, SystemContext: sys, BlobCacheDir: b.TempDir()}
			res, err := bl.Commit(env.ctx, ref, opts)
			if err != nil {
				b.Fatal(err)
			}
			empty(res)
			benchCommit(b, env, bl, ref, opts, bytes, empty)
		})
	}
}

// benchCommit times commits of bl to ref; empty runs after each, untimed.
// It reports the ratio of the layers' blob sizes to bytes as out/in.
func benchCommit(b *testing.B, env *benchEnv, bl *Builder, ref types.ImageReference, opts CommitOptions, bytes int64, empty func(CommitResult)) {
	b.Helper()
	env.reset(b)
	b.SetBytes(bytes)
	b.ReportAllocs()
	var blobs int64
	for b.Loop() {
		res, err := bl.Commit(env.ctx, ref, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		m, err := manifest.FromBlob(res.Manifest, res.ManifestType)
		if err != nil {
			b.Fatal(err)
		}
		blobs = 0
		for _, l := range m.LayerInfos() {
			blobs += l.Size
		}
		empty(res)
		env.reset(b)
		b.StartTimer()
	}
	b.ReportMetric(float64(blobs)/float64(bytes), "out/in")
}

// BenchmarkCommitFloor is the floor the commit benchmarks are measured
// against: the container's tree walked and tarred by archive/tar, then
// compressed and hashed (diffID and blob digest) by the same compressors a
// commit uses, into io.Discard ("discard") or a blob file ("file"). No
// containers/image, no storage, no tar normalisation. With -bench.tree it
// walks that directory instead, so that the floor of a peer.sh workload can
// be set beside the CLI's time on it.
func BenchmarkCommitFloor(b *testing.B) {
	env := newBenchEnv(b)
	root := *benchTree
	var bytes int64
	if root == "" {
		bl := env.filledBuilder(b, Scratch, "bench", "", int64(*benchMiB)<<20, 1)
		bytes = env.newLayerBytes(b, bl)
		mp, err := bl.Mount()
		if err != nil {
			b.Fatal(err)
		}
		defer bl.Unmount()
		root = mp
	} else {
		// The tree's own tar length: there is no layer to measure.
		var err error
		if bytes, err = benchtree.Tar(io.Discard, root); err != nil {
			b.Fatal(err)
		}
	}
	blobDir := b.TempDir()
	for _, c := range allCompressions {
		for _, sink := range []string{"discard", "file"} {
			b.Run(c.String()+"/"+sink, func(b *testing.B) {
				opts := layerexport.Options{Algorithm: exportAlgorithm(c)}
				env.reset(b)
				b.SetBytes(bytes)
				b.ReportAllocs()
				var d layerexport.Digests
				for b.Loop() {
					tr := tarTree(root)
					var err error
					if sink == "discard" {
						d, err = layerexport.Stream(env.ctx, io.Discard, tr, opts)
					} else {
						var path string
						if d, path, err = layerexport.ToFile(env.ctx, blobDir, tr, opts); err == nil {
							b.StopTimer()
							removeAll(b, path)
							env.reset(b)
							b.StartTimer()
						}
					}
					if cerr := tr.Close(); err == nil {
						err = cerr
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(d.Size)/float64(bytes), "out/in")
			})
		}
	}
}

// tarTree returns the tar stream of the tree under root, written by a
// goroutine in 1 MiB chunks. Close waits for the goroutine.
func tarTree(root string) io.ReadCloser {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		bw := bufio.NewWriterSize(pw, 1<<20)
		_, err := benchtree.Tar(bw, root)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	return &waitingReader{PipeReader: pr, done: done}
}

type waitingReader struct {
	*io.PipeReader
	done chan struct{}
}

func (r *waitingReader) Close() error {
	err := r.PipeReader.Close()
	<-r.done
	return err
}
