package bricklayer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/bricklayer/bricklayer/internal/layerexport"
	"github.com/bricklayer/bricklayer/internal/tarnorm"
	digest "github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/pkg/blobinfocache"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/transports/alltransports"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
	"golang.org/x/sync/errgroup"
)

// imageSource serves a working container as an image: the layers exported
// when it was made, the base image's layers, and the synthesised config and
// manifest. Every digest is known before GetManifest is called, as
// copy.Image checks each blob against the manifest.
type imageSource struct {
	ref   *containerImageRef
	sys   *types.SystemContext
	store storage.Store

	tmpDir       string // private directory of exported blobs, removed by Close
	releaseTmp   func() // lets go of tmpDir's lock (see makeExportDir)
	manifest     []byte
	manifestType string
	config       []byte
	configDigest digest.Digest
	blobs        map[digest.Digest]blob
	// layerInfosForCopy, when non-nil, replaces the manifest's layers for
	// copying (base layers that can only be served uncompressed).
	layerInfosForCopy []types.BlobInfo
	// publish exports blobs as a destination's own: synced, readable by
	// all. They are written into an OCI layout, or linked into a dir:
	// directory.
	publish bool

	originMu sync.Mutex
	origin   types.ImageSource // opened on first use; the base image's source
	// destRegistry is the registry the commit pushes to, "" for none or
	// unknown (a caller's own copy.Image of ImageRef; see originContext).
	destRegistry string

	// uploader, when set, streams the new layers to the registry as they
	// are exported.
	uploader *uploader

	// createdLayers are the store layers this source wrote for a
	// containers-storage destination, newest last.
	createdLayers []string

	// sweep says which layer's changes are also looked for by ctime (see
	// changed_since.go).
	sweep changeSweep
	// comparesTrees is whether the store's driver finds a layer's changes
	// by comparing its tree with its parent's, which treetar does instead.
	comparesTrees bool
	// compressor is held by the one layer export that compresses at a
	// time (holdCompressor).
	compressor chan struct{}
	// readsUpper is whether the store's driver is overlay making its
	// diffs natively, from a layer's upper directory, which treetar reads
	// instead.
	readsUpper bool

	// blobCache is containers/image's blob info cache, which pairs blob
	// digests with the diffIDs that a containers tool computed for them.
	// The export records each layer it compresses there, and a layout's
	// blob that it pairs with a base layer needs no decompression to be
	// taken.
	blobCache types.BlobInfoCache

	// layerCache, when set, keeps the compressed blobs of base layers for
	// the next commit (see blob_cache.go).
	layerCache *blobCache
}

// exportTarget says where a commit's new layers go. The zero value means
// blob files in the source's private temporary directory.
type exportTarget struct {
	// blobDir, when set, receives the blob files instead: the blobs/sha256
	// directory of an OCI layout destination, where copy.Image finds them and
	// copies nothing. Blobs written there are not removed by Close.
	blobDir string
	// intoStore writes the new layers into the builder's store, uncompressed,
	// under the IDs that the containers-storage destination of the same store
	// will look for, so that copy.Image reuses them instead of writing them
	// again.
	intoStore bool
	// exportBase exports the base image's layers too, compressed as the new
	// ones, when their original blobs cannot be served: this is faster than
	// letting copy.Image compress them one stream at a time. For a registry
	// a base layer's own compressed descriptor is kept, so that a registry
	// holding its blob reuses it, and so is one that the blob info cache
	// knows a blob of in that registry.
	exportBase bool
	// upload, when set, is the registry destination the new layers are
	// streamed to while they are exported, so that copy.Image finds them
	// there instead of uploading them after the export.
	upload types.ImageReference
	// linkInto, when set, is a dir: destination on the filesystem of the
	// source's temporary directory: the blobs exported there are linked
	// into it once containers/image has opened it (see dir_link.go).
	linkInto string
}

var _ types.ImageSource = (*imageSource)(nil)

// blob says where the bytes of one digest come from.
type blob struct {
	size int64
	// path is an exported file; else layerID is a storage layer served as its
	// uncompressed diff; else fromOrigin says the base image's source has it.
	path       string
	layerID    string
	fromOrigin bool
}

// exportedLayer is one layer this commit writes: a blob file at path, or a
// layer of the store (storeLayer) served as its uncompressed diff.
type exportedLayer struct {
	layerexport.Digests
	path       string
	storeLayer string
}

// newImageSource exports the container's new layers and builds the config
// and manifest.
func newImageSource(ctx context.Context, ref *containerImageRef, sys *types.SystemContext, target exportTarget) (_ *imageSource, err error) {
	b := ref.builder
	b.mu.Lock()
	state := b.state // a copy: setters may run while the export does
	b.mu.Unlock()
	s := &imageSource{ref: ref, sys: sys, store: b.store, blobs: map[digest.Digest]blob{}, publish: target.blobDir != "" || target.linkInto != "",
		compressor: make(chan struct{}, 1)}
	if target.upload != nil {
		if named := target.upload.DockerReference(); named != nil {
			s.destRegistry = reference.Domain(named)
		}
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	ctr, err := b.store.Container(state.ContainerID)
	if err != nil {
		if errors.Is(err, storage.ErrContainerUnknown) {
			return nil, fmt.Errorf("container %s (%s): %w", state.ContainerName, state.ContainerID, ErrContainerNotFound)
		}
		return nil, fmt.Errorf("reading container %s: %w", state.ContainerName, err)
	}
	s.comparesTrees = comparesTrees(b.store)
	s.readsUpper = b.store.GraphDriverName() == "overlay" && !s.comparesTrees
	s.sweep = sweepFor(ctr)
	chain, err := layerChain(b.store, ctr.LayerID)
	if err != nil {
		return nil, fmt.Errorf("walking the layers of container %s: %w", state.ContainerName, err)
	}
	base := state.BaseLayers
	if len(base) > len(chain) {
		return nil, fmt.Errorf("container %s has %d layers, fewer than its base image's %d", state.ContainerName, len(chain), len(base))
	}
	for i, bl := range base {
		if chain[i].ID != bl.LayerID {
			return nil, fmt.Errorf("container %s: layer %d is %s, but base image %s has %s there", state.ContainerName, i, chain[i].ID, state.FromImageID, bl.LayerID)
		}
	}

	serveOrigin := s.originAvailable(ctx, state.FromImageOrigin, base)
	var exported []exportedLayer
	baseExported := map[int]exportedLayer{}
	// Commit asks for no compression when the destination is a store.
	compression := ref.opts.Compression
	if parent, ok := storeChainTop(chain[:len(base)], base); target.intoStore && ok && !ref.opts.composesLayers() {
		ctrDir, derr := b.store.ContainerDirectory(ctr.ID)
		if derr != nil {
			logrus.Debugf("locating the directory of container %s: %v", state.ContainerName, derr)
			ctrDir = ""
		}
		exported, err = s.exportIntoStore(ctx, ctrDir, parent, chain[len(base):])
	} else {
		dir := target.blobDir
		if dir == "" {
			if s.tmpDir, s.releaseTmp, err = makeExportDir(bigFilesDir(sys)); err != nil {
				return nil, fmt.Errorf("creating a temporary directory for container %s: %w", state.ContainerName, err)
			}
			dir = s.tmpDir
		}
		s.blobCache = blobinfocache.DefaultCache(sys)
		if ref.opts.BlobCacheDir != "" && compression != CompressionNone {
			s.layerCache, err = openBlobCache(ref.opts.BlobCacheDir, s.exportOptions(nil))
			switch {
			case errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS):
				// A cache this commit may not write to (a read-only
				// mount, say, that a CI job shares) is no reason to fail.
				logrus.Warnf("committing container %s without the blob cache: %v", state.ContainerName, err)
				s.layerCache, err = nil, nil
			case err != nil:
				return nil, fmt.Errorf("committing container %s: %w", state.ContainerName, err)
			}
		}
		if ref.opts.composesLayers() {
			exported, base, baseExported, err = s.exportComposedWithBase(ctx, dir, target, ctr, chain, base, compression, serveOrigin)
		} else {
			jobs := s.baseJobs(target, chain, base, ref.opts.manifestType(), compression, serveOrigin)
			nBase := len(jobs)
			for _, l := range chain[len(base):] {
				jobs = append(jobs, exportJob{layer: l})
			}
			// An uncompressed layer is left to copy.Image, which compresses
			// it for a registry.
			if target.upload != nil && compression != CompressionNone {
				s.uploader = openUploader(ctx, target.upload, destinationContext(ref.opts))
			}
			var all []exportedLayer
			all, err = s.exportLayers(ctx, dir, jobs)
			if s.uploader != nil {
				if cerr := s.uploader.Close(); cerr != nil {
					logrus.Debugf("closing the upload to %s: %v", target.upload.StringWithinTransport(), cerr)
				}
				s.uploader = nil
			}
			if err == nil {
				for i, el := range all[:nBase] {
					baseExported[indexOfLayer(base, jobs[i].layer.ID)] = el
				}
				exported = all[nBase:]
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("exporting container %s: %w", state.ContainerName, err)
	}
	if err := s.describe(&state, base, baseExported, exported, compression, serveOrigin); err != nil {
		return nil, fmt.Errorf("describing container %s: %w", state.ContainerName, err)
	}
	return s, nil
}

// exportJob is one layer to export. A base layer is exported as the store
// holds it, not normalised, so that its diffID stays the base image's,
// unless one of its candidates, blobs that an OCI layout destination holds
// already, turns out to hold it.
type exportJob struct {
	layer      *storage.Layer
	base       bool
	wantDiffID digest.Digest
	candidates []layoutBlob
}

// baseJobs lists the base layers a commit to target exports, each with the
// blobs of an OCI layout destination that may hold it already.
func (s *imageSource) baseJobs(target exportTarget, chain []*storage.Layer, base []baseLayer, mtype string, c Compression, serveOrigin bool) []exportJob {
	var jobs []exportJob
	var layout *layoutBlobs
	for i, bl := range base {
		if !exportsBase(target, bl, mtype, c, serveOrigin) || s.registryMayHave(target.upload, bl.DiffID) {
			continue
		}
		job := exportJob{layer: chain[i], base: true, wantDiffID: bl.DiffID}
		if target.blobDir != "" && c != CompressionNone {
			if layout == nil {
				layout = readLayoutBlobs(target.blobDir)
			}
			job.candidates = layout.candidates(bl.DiffID, c, bl.descriptor())
		}
		jobs = append(jobs, job)
	}
	return jobs
}

// baseServable says whether a base layer's own blob can be served: a
// compressed one from the origin it was pulled from, and an uncompressed
// one (from the store, which holds the same bytes) when the commit asks for
// no compression. Otherwise a local destination gets it exported with the
// commit's compression, from the store's exact copy of its tar, so that its
// diffID stays the base's.
func baseServable(bl baseLayer, mtype string, c Compression, serveOrigin bool) bool {
	desc, ok := convertLayerDescriptor(bl.descriptor(), mtype)
	if !ok {
		return false
	}
	if desc.Digest == bl.DiffID {
		return c == CompressionNone
	}
	return serveOrigin
}

// exportsBase says whether a base layer is exported with the new ones
// rather than served as it is. An OCI layout takes a layer faster from our
// parallel export, written in place, than from copy.Image copying the
// store's diff one more time, so there a base layer served from the store is
// exported too, unless the layout holds its blob already. A registry gets
// exported the compressed layers of a base stored uncompressed, which has
// no compressed blob of its own that the registry could hold; uncompressed
// pushes are left to copy.Image, as for new layers.
func exportsBase(target exportTarget, bl baseLayer, mtype string, c Compression, serveOrigin bool) bool {
	switch {
	case !target.exportBase:
		return false
	case target.upload != nil:
		desc, ok := convertLayerDescriptor(bl.descriptor(), mtype)
		return c != CompressionNone && (!ok || desc.Digest == bl.DiffID)
	case !baseServable(bl, mtype, c, serveOrigin):
		return true
	case target.blobDir == "" || serveOrigin:
		return false
	}
	_, err := os.Lstat(filepath.Join(target.blobDir, bl.DiffID.Encoded()))
	return err != nil
}

func indexOfLayer(base []baseLayer, id string) int {
	for i, bl := range base {
		if bl.LayerID == id {
			return i
		}
	}
	return -1
}

// originAvailable says whether the base image's origin can be opened to
// serve the original blobs of its layers, base. A local origin (a
// directory, a layout, an archive) may have been removed or changed since
// the pull, which opening it need not reveal (a dir: source opens without
// looking), so there each blob is opened too, and its size checked; a
// registry's blobs are taken to be there. An origin whose blobs are all the
// layers' uncompressed tars (a docker-archive) is not opened: the store
// serves the same bytes.
func (s *imageSource) originAvailable(ctx context.Context, origin string, base []baseLayer) bool {
	if origin == "" || !slices.ContainsFunc(base, baseLayer.originBlob) {
		return false
	}
	src, err := s.originSource(ctx)
	if err == nil && localPath(src.Reference()) != "" {
		err = holdsBlobs(ctx, src, base)
	}
	if err != nil {
		logrus.Debugf("base image origin %s unavailable, serving its layers from the store: %v", origin, err)
		return false
	}
	return true
}

// holdsBlobs checks that src serves a blob of the right size for each
// layer of base whose blob only the origin has.
func holdsBlobs(ctx context.Context, src types.ImageSource, base []baseLayer) error {
	for _, bl := range base {
		d := bl.Descriptor
		if !bl.originBlob() {
			continue
		}
		rc, size, err := src.GetBlob(ctx, types.BlobInfo{Digest: d.Digest, Size: d.Size}, none.NoCache)
		if err != nil {
			return err
		}
		rc.Close()
		if size >= 0 && size != d.Size {
			return fmt.Errorf("blob %s has %d bytes, not %d", d.Digest, size, d.Size)
		}
	}
	return nil
}

// holdCompressor waits until no other layer of this commit is being
// compressed, when the layer is to be compressed with a; the returned
// function lets the next one go. Layers are exported two at a time, but
// compressed one at a time: each compressor already runs on several
// goroutines (pgzip four blocks, zstd two encoders), and two take the
// CLI's heap to its 32 MiB soft limit. Two overlay layers of 204 and 163
// MB compressed at once made the garbage collector run 261 times (gzip)
// and 1,281 times (zstd), against 8 and 6 one at a time, and took 3.3-3.6
// s against 2.9-3.1 s (gzip) and 6.6-7.3 s against 4.2-4.5 s (zstd). What
// comes before a compression (a new layer's comparison with its parent)
// and after it (the compressor's last blocks, the sync) still overlaps
// another layer's.
//
// The store's layer lock is never waited for while another export waits
// here holding it: a base layer's export takes the compressor before it
// opens its diff (which holds the lock until closed), and every export
// lets the compressor go before it closes its diff (which may unmount a
// layer, taking the lock).
func (s *imageSource) holdCompressor(ctx context.Context, layerID string, a layerexport.Algorithm) (release func(), err error) {
	if a == layerexport.None {
		return func() {}, nil
	}
	select {
	case s.compressor <- struct{}{}:
		return sync.OnceFunc(func() { <-s.compressor }), nil
	case <-ctx.Done():
		return func() {}, fmt.Errorf("exporting layer %s: %w", layerID, ctx.Err())
	}
}

// exportLayers exports each job's layer into dir, several at once.
func (s *imageSource) exportLayers(ctx context.Context, dir string, jobs []exportJob) ([]exportedLayer, error) {
	opts := s.ref.opts
	out := make([]exportedLayer, len(jobs))
	g, gctx := errgroup.WithContext(ctx)
	limit := opts.LayerParallelism
	if limit == 0 {
		limit = 2
	}
	g.SetLimit(limit)
	for i, job := range jobs {
		g.Go(func() error {
			if el, ok := s.takeLayoutBlob(gctx, job); ok {
				out[i] = el
				s.reportTaken(job.layer.ID, el, TakenLayout)
				return nil
			}
			if el, ok := s.takeCachedBlob(gctx, dir, job); ok {
				out[i] = el
				s.reportTaken(job.layer.ID, el, TakenBlobCache)
				return nil
			}
			d, path, err := s.exportLayer(gctx, dir, job.layer, job.base)
			if err != nil {
				return err
			}
			if job.base && d.DiffID != job.wantDiffID {
				return fmt.Errorf("base layer %s: its diff has digest %s, the base image records %s: %w", job.layer.ID, d.DiffID, job.wantDiffID, ErrLayerCorrupt)
			}
			if d.Digest != d.DiffID {
				s.blobCache.RecordDigestUncompressedPair(d.Digest, d.DiffID)
			}
			if job.base && s.layerCache != nil {
				s.layerCache.add(path, d)
			}
			out[i] = exportedLayer{Digests: d, path: path}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// reportTaken reports to ExportProgress that layer id's blob el was taken
// from where, not exported.
func (s *imageSource) reportTaken(id string, el exportedLayer, where string) {
	if fn := s.ref.opts.ExportProgress; fn != nil {
		fn(LayerProgress{LayerID: id, Done: true, Digest: el.Digest, Size: el.Size, Taken: where})
	}
}

// testHookGetBlob, when set by a test, is called with the digest of each
// blob copy.Image asks the source for.
var testHookGetBlob func(digest.Digest)

// testHookExportStarted, when set by a test, is called as each layer's
// export begins reading it.
var testHookExportStarted func(layerID string)

func exportStarted(layerID string) {
	if testHookExportStarted != nil {
		testHookExportStarted(layerID)
	}
}

// exportOptions are the options of an export into a blob file, normalised
// as norm says: the commit's compression, and a blob published (synced,
// readable by all) when it is the destination's own.
func (s *imageSource) exportOptions(norm *tarnorm.Options) layerexport.Options {
	return layerexport.Options{
		Algorithm: exportAlgorithm(s.ref.opts.Compression),
		Level:     s.ref.opts.CompressionLevel,
		Normalize: norm,
		Publish:   s.publish,
	}
}

// exportLayer streams one layer's diff against its parent into a blob file.
// The diff is closed as soon as it has been read to its end. A base layer
// is exported as the store holds it, not normalised, and not uploaded
// ahead.
func (s *imageSource) exportLayer(ctx context.Context, dir string, l *storage.Layer, base bool) (layerexport.Digests, string, error) {
	if err := ctx.Err(); err != nil {
		return layerexport.Digests{}, "", fmt.Errorf("layer %s: %w", l.ID, err)
	}
	// A new layer's diff is made here, without the store's lock, when
	// treetar can read it faster: a layer without a parent, one the
	// driver would compare with its parent's tree (which also makes the
	// ctime check the store's diff leaves out), and an overlay layer's
	// upper directory.
	ownDiff := !base && (l.Parent == "" || s.comparesTrees || s.readsUpper)
	var norm *tarnorm.Options
	if !base {
		norm = s.normalization(false)
	}
	eopts := s.exportOptions(norm)
	logrus.Debugf("exporting layer %s (%s)", l.ID, eopts.Algorithm)
	// The compressor is taken (holdCompressor) after a new layer's diff is
	// made, which holds no lock, but before a base layer's is opened,
	// which holds the store's (see baseDiff): no export waits for it
	// holding that lock.
	var rc io.ReadCloser
	release := func() {}
	var err error
	if ownDiff {
		if rc, err = s.unlockedDiff(ctx, l, norm); err == nil {
			if release, err = s.holdCompressor(ctx, l.ID, eopts.Algorithm); err != nil {
				rc.Close()
			}
		}
		eopts.Normalize = nil // written normalised
	} else if release, err = s.holdCompressor(ctx, l.ID, eopts.Algorithm); err == nil {
		if rc, err = s.baseDiff(l.ID); err != nil {
			release()
		}
	}
	if err != nil {
		return layerexport.Digests{}, "", err
	}
	defer release()
	// The next layer may start its compression once this one's diff is
	// read: what is left here is the compressor's last blocks and the
	// sync. It is let go before the diff is closed, which may take the
	// store's lock (unmounting the layer).
	diff := &closeAtEOF{rc: rc, first: release}
	src, exported := s.trackProgress(l.ID, diff)
	var reportUpload func()
	if s.uploader != nil && !base {
		// A base layer's blob is left to copy.Image to upload, which
		// records in the blob info cache that it is compressed: a later
		// push finds the blob there and reuses it (registryMayHave).
		eopts.Follow, reportUpload = s.uploader.follow(ctx, l.ID)
	}
	exportStarted(l.ID)
	d, path, err := layerexport.ToFile(ctx, dir, src, eopts)
	if reportUpload != nil && err == nil {
		reportUpload()
	}
	if cerr := diff.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err == nil && ownDiff {
		err = s.checkStillThere(l)
	}
	if err != nil {
		return layerexport.Digests{}, "", fmt.Errorf("exporting layer %s: %w", l.ID, err)
	}
	logrus.Debugf("exported layer %s: diffID %s, blob %s (%d bytes)", l.ID, d.DiffID, d.Digest, d.Size)
	exported(d)
	return d, path, nil
}

func exportAlgorithm(c Compression) layerexport.Algorithm {
	switch c {
	case CompressionNone:
		return layerexport.None
	case CompressionZstd:
		return layerexport.Zstd
	}
	return layerexport.Gzip
}

// bigFilesDir is where exported blobs are written: the SystemContext's
// BigFilesTemporaryDir, else $TMPDIR, else /var/tmp.
func bigFilesDir(sys *types.SystemContext) string {
	if sys != nil && sys.BigFilesTemporaryDir != "" {
		return sys.BigFilesTemporaryDir
	}
	if d := os.Getenv("TMPDIR"); d != "" {
		return d
	}
	return "/var/tmp"
}

// Reference returns the reference used to set up this source.
func (s *imageSource) Reference() types.ImageReference { return s.ref }

// Close removes every file the export wrote and closes the base image's
// source if it was opened.
func (s *imageSource) Close() error {
	var errs []error
	s.originMu.Lock()
	if s.origin != nil {
		errs = append(errs, s.origin.Close())
		s.origin = nil
	}
	s.originMu.Unlock()
	if s.tmpDir != "" {
		err := os.RemoveAll(s.tmpDir)
		s.releaseTmp()
		if err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", s.tmpDir, err))
		}
		s.tmpDir = ""
	}
	return errors.Join(errs...)
}

// GetManifest returns the synthesised manifest. The source has a single
// image, so instanceDigest must be nil.
func (s *imageSource) GetManifest(ctx context.Context, instanceDigest *digest.Digest) ([]byte, string, error) {
	if instanceDigest != nil {
		return nil, "", fmt.Errorf("manifest %s: container %s has a single image, not a list", *instanceDigest, s.ref.builder.ContainerName())
	}
	return s.manifest, s.manifestType, nil
}

// HasThreadSafeGetBlob is true: GetBlob may be called from several
// goroutines.
func (s *imageSource) HasThreadSafeGetBlob() bool { return true }

// GetSignatures returns none: a working container is not signed.
func (s *imageSource) GetSignatures(ctx context.Context, instanceDigest *digest.Digest) ([][]byte, error) {
	return nil, nil
}

// LayerInfosForCopy returns nil when the manifest's layers are what is
// copied, or the list with base layers replaced by their uncompressed form
// where their original blobs cannot be had.
func (s *imageSource) LayerInfosForCopy(ctx context.Context, instanceDigest *digest.Digest) ([]types.BlobInfo, error) {
	if instanceDigest != nil {
		return nil, fmt.Errorf("layer infos of %s: container %s has a single image", *instanceDigest, s.ref.builder.ContainerName())
	}
	return s.layerInfosForCopy, nil
}

// GetBlob returns the config or a layer blob, and its size. The caller must
// close the stream.
func (s *imageSource) GetBlob(ctx context.Context, info types.BlobInfo, cache types.BlobInfoCache) (io.ReadCloser, int64, error) {
	if testHookGetBlob != nil {
		testHookGetBlob(info.Digest)
	}
	if info.Digest == s.configDigest {
		return io.NopCloser(newBytesReader(s.config)), int64(len(s.config)), nil
	}
	bl, ok := s.blobs[info.Digest]
	if !ok {
		return nil, -1, fmt.Errorf("blob %s: not part of container %s's image", info.Digest, s.ref.builder.ContainerName())
	}
	switch {
	case bl.path != "":
		f, err := os.Open(bl.path)
		if err != nil {
			return nil, -1, fmt.Errorf("opening blob %s: %w", info.Digest, err)
		}
		return ctxReadCloser{ctx, f, "blob " + info.Digest.String()}, bl.size, nil
	case bl.layerID != "":
		rc, err := s.baseDiff(bl.layerID)
		if err != nil {
			return nil, -1, fmt.Errorf("serving blob %s: %w", info.Digest, err)
		}
		// Released at its end, not when copy.Image has stored the blob: a
		// writer of the store waits for the lock this one holds.
		return ctxReadCloser{ctx, &closeAtEOF{rc: rc}, "layer " + bl.layerID + " for blob " + info.Digest.String()}, bl.size, nil
	default:
		src, err := s.originSource(ctx)
		if err != nil {
			return nil, -1, err
		}
		return src.GetBlob(ctx, info, cache)
	}
}

// ctxReadCloser fails reads once ctx is done, so that a cancelled copy
// stops reading a blob (and a destination does not commit it). Its read
// errors name what is read: copy.Image reports them without the blob.
type ctxReadCloser struct {
	ctx context.Context
	io.ReadCloser
	what string
}

func (r ctxReadCloser) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("reading %s: %w", r.what, err)
	}
	return n, err
}

// originSource opens the source the base image was pulled from.
func (s *imageSource) originSource(ctx context.Context) (types.ImageSource, error) {
	s.originMu.Lock()
	defer s.originMu.Unlock()
	if s.origin != nil {
		return s.origin, nil
	}
	origin := s.ref.builder.state.FromImageOrigin
	ref, err := alltransports.ParseImageName(origin)
	if err != nil {
		return nil, fmt.Errorf("parsing the base image's origin %q: %w", origin, err)
	}
	src, err := ref.NewImageSource(ctx, originContext(s.sys, ref, s.destRegistry))
	if err != nil {
		return nil, fmt.Errorf("opening the base image's origin %s: %w", origin, err)
	}
	s.origin = src
	return src, nil
}

// originContext is the context the base image's origin, ref, is opened
// with. A commit that pushes to a registry (destRegistry) has one context
// for both, whose credentials, token, TLS waiver and certificate directory
// are the destination's and must not go to another host: an origin in
// another registry gets what the system's configuration gives it (auth
// files, registries.conf, certs.d), and where that does not open it, the
// base layers are served from the store. Otherwise the context is the
// origin's to use: the only registry a local commit reads, and the source
// context of a caller's own copy.Image of ImageRef.
func originContext(sys *types.SystemContext, ref types.ImageReference, destRegistry string) *types.SystemContext {
	named := ref.DockerReference()
	if ref.Transport().Name() != "docker" || named == nil || sys == nil || destRegistry == "" || reference.Domain(named) == destRegistry {
		return sys
	}
	own := *sys
	own.DockerAuthConfig = nil
	own.DockerBearerRegistryToken = ""
	own.DockerInsecureSkipTLSVerify = types.OptionalBoolUndefined
	own.DockerCertPath = ""
	return &own
}

// closeAtEOF closes its ReadCloser as soon as a read reaches its end, not
// when the reader is done with the bytes: a base layer's diff holds the
// layer store's lock until its stream is closed (for reading, or for
// writing through store.Diff; see base_diff.go), and a writer of the store,
// or the next layer's export through store.Diff, waits for that lock while
// this one's compressor drains and its blob is synced to disk (about 50 ms
// a layer). Close returns the error of that first close. A Close while a
// read is in flight does not wait for it.
type closeAtEOF struct {
	rc     io.ReadCloser
	once   sync.Once
	closed atomic.Bool
	err    error
	// first, when set, is called just before rc is closed.
	first func()
}

func (c *closeAtEOF) Read(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, io.EOF
	}
	n, err := c.rc.Read(p)
	if err == io.EOF {
		c.Close()
	}
	return n, err
}

func (c *closeAtEOF) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		if c.first != nil {
			c.first()
		}
		c.err = c.rc.Close()
	})
	return c.err
}
