package bricklayer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bricklayer/bricklayer/docker"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/manifest"
	is "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/transports"
	"go.podman.io/image/v5/types"
)

// CommitOptions say how [Builder.Commit] writes the image. The zero value
// writes an OCI image with gzip-compressed layers.
type CommitOptions struct {
	// ManifestType is the manifest's MIME type: "" or
	// v1.MediaTypeImageManifest for OCI, docker.V2S2MediaTypeManifest for
	// Docker v2s2. Anything else is [ErrUnsupportedManifestType].
	ManifestType string
	// Compression is the compression of the layers this commit writes.
	// Layers written into containers-storage are stored uncompressed whatever
	// this says.
	Compression Compression
	// CompressionLevel is the compressor's level; 0 means its default.
	CompressionLevel int
	// HistoryTimestamp, when set, is the image's created time and that of the
	// history entries this commit adds; nil means now.
	HistoryTimestamp *time.Time
	// CreatedBy and HistoryComment, when set, replace the builder's for the
	// history entry of the new layer.
	CreatedBy      string
	HistoryComment string
	// SystemContext configures the destination (credentials, TLS, temporary
	// directory for big files); nil means defaults.
	SystemContext *types.SystemContext
	// SignaturePolicyPath is the signature policy file; "" means the system
	// default, and accept-anything when no policy file exists anywhere.
	SignaturePolicyPath string
	// ReportWriter receives copy.Image's progress; nil is quiet.
	ReportWriter io.Writer
	// ExportProgress, when set, is called while the container's new layers
	// are exported, before anything is copied: after every read of a layer's
	// diff, and once with Done set when its blob is complete. Layers are
	// exported concurrently, so it must be safe to call from several
	// goroutines, and it should return quickly.
	ExportProgress func(LayerProgress)
	// AdditionalTags are more names for the image when the destination is
	// containers-storage.
	AdditionalTags []string
	// LayerParallelism is how many layers are exported at once; 0 means 2.
	LayerParallelism int
}

// Compression is the compression of the layers a commit writes.
type Compression int

const (
	// CompressionGzip compresses layers with gzip; it is the default.
	CompressionGzip Compression = iota
	// CompressionNone writes layers uncompressed.
	CompressionNone
	// CompressionZstd compresses layers with zstd; OCI manifests only.
	CompressionZstd
)

// String names the compression as the CLI spells it.
func (c Compression) String() string {
	switch c {
	case CompressionGzip:
		return "gzip"
	case CompressionNone:
		return "none"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// ParseCompression reads "none", "gzip" or "zstd" ("uncompressed" is taken
// for "none").
func ParseCompression(s string) (Compression, error) {
	switch strings.ToLower(s) {
	case "gzip":
		return CompressionGzip, nil
	case "none", "uncompressed":
		return CompressionNone, nil
	case "zstd":
		return CompressionZstd, nil
	}
	return 0, fmt.Errorf("compression %q: %w (want none, gzip or zstd)", s, ErrUnsupportedCompression)
}

// CommitResult is what [Builder.Commit] wrote.
type CommitResult struct {
	// ImageID is the image's ID when the destination is containers-storage,
	// "" otherwise.
	ImageID string
	// ManifestDigest is the digest of the manifest written.
	ManifestDigest digest.Digest
	// Manifest is the manifest written, and ManifestType its MIME type.
	Manifest     []byte
	ManifestType string
	// Canonical is the destination's name with the manifest digest, nil when
	// the destination has no registry name.
	Canonical reference.Canonical
}

// validate checks the options that need no I/O.
func (o *CommitOptions) validate() error {
	switch o.ManifestType {
	case "", v1.MediaTypeImageManifest, docker.V2S2MediaTypeManifest:
	default:
		return fmt.Errorf("manifest type %q: %w (want %s or %s)", o.ManifestType, ErrUnsupportedManifestType, v1.MediaTypeImageManifest, docker.V2S2MediaTypeManifest)
	}
	switch o.Compression {
	case CompressionGzip, CompressionNone:
	case CompressionZstd:
		if o.ManifestType == docker.V2S2MediaTypeManifest {
			return fmt.Errorf("zstd layers in a Docker v2s2 image: %w (use gzip or none, or the OCI format)", ErrUnsupportedCompression)
		}
	default:
		return fmt.Errorf("%s: %w", o.Compression, ErrUnsupportedCompression)
	}
	if o.LayerParallelism < 0 {
		return fmt.Errorf("layer parallelism %d: must not be negative", o.LayerParallelism)
	}
	return nil
}

// manifestType is the manifest MIME type the commit writes.
func (o *CommitOptions) manifestType() string {
	if o.ManifestType == "" {
		return v1.MediaTypeImageManifest
	}
	return o.ManifestType
}

// Commit writes the working container as an image to dest through
// copy.Image. The container's new layers are exported first, so an error
// there leaves dest untouched; an error while copying removes what the copy
// wrote to a local destination. The container is never changed.
func (b *Builder) Commit(ctx context.Context, dest types.ImageReference, opts CommitOptions) (CommitResult, error) {
	destName := transports.ImageName(dest)
	if err := opts.validate(); err != nil {
		return CommitResult{}, fmt.Errorf("committing container %s to %s: %w", b.ContainerName(), destName, err)
	}
	ref := &containerImageRef{builder: b, opts: opts}
	undo := snapshotDestination(dest)
	target := b.exportTarget(dest, opts.SystemContext)
	src, err := newImageSource(ctx, ref, opts.SystemContext, target)
	if err != nil {
		undo()
		return CommitResult{}, fmt.Errorf("committing container %s to %s: %w", b.ContainerName(), destName, err)
	}
	defer func() {
		if cerr := src.Close(); cerr != nil {
			logrus.Warnf("cleaning up after committing container %s: %v", b.ContainerName(), cerr)
		}
	}()
	ref.prepared = src

	policy, err := policyContext(opts.SignaturePolicyPath, opts.SystemContext)
	if err != nil {
		undo()
		src.removeCreatedLayers()
		return CommitResult{}, err
	}
	defer policy.Destroy() //nolint:errcheck // nothing to report

	manifestBytes, err := copy.Image(ctx, policy, dest, ref, &copy.Options{
		ReportWriter:   opts.ReportWriter,
		SourceCtx:      opts.SystemContext,
		DestinationCtx: destinationContext(opts),
	})
	if err != nil {
		undo()
		src.removeCreatedLayers()
		return CommitResult{}, fmt.Errorf("committing container %s to %s: %w", b.ContainerName(), destName, err)
	}
	res := CommitResult{Manifest: manifestBytes, ManifestType: manifest.GuessMIMEType(manifestBytes)}
	if res.ManifestDigest, err = manifest.Digest(manifestBytes); err != nil {
		return CommitResult{}, fmt.Errorf("digesting the manifest written to %s: %w", destName, err)
	}
	if named := dest.DockerReference(); named != nil {
		if c, err := reference.WithDigest(reference.TrimNamed(named), res.ManifestDigest); err == nil {
			res.Canonical = c
		}
	}
	if dest.Transport().Name() == is.Transport.Name() {
		img, err := is.Transport.GetStoreImage(b.store, dest)
		if err != nil {
			return CommitResult{}, fmt.Errorf("finding the image committed to %s: %w", destName, err)
		}
		res.ImageID = img.ID
		if len(opts.AdditionalTags) > 0 {
			if err := b.store.AddNames(img.ID, opts.AdditionalTags); err != nil {
				return res, fmt.Errorf("tagging image %s as %v: %w", img.ID, opts.AdditionalTags, err)
			}
		}
	}
	logrus.Debugf("committed container %s to %s: manifest %s", b.ContainerName(), destName, res.ManifestDigest)
	return res, nil
}

// exportTarget picks where the new layers are written for dest: straight
// into the store when dest is the builder's own store, into the layout when
// dest is an OCI layout, else a private temporary directory.
func (b *Builder) exportTarget(dest types.ImageReference, sys *types.SystemContext) exportTarget {
	switch dest.Transport().Name() {
	case is.Transport.Name():
		spec := "[" + b.store.GraphDriverName() + "@" + b.store.GraphRoot() + "+"
		if strings.HasPrefix(dest.StringWithinTransport(), spec) {
			return exportTarget{intoStore: true}
		}
	case "oci":
		if sys != nil && sys.OCISharedBlobDirPath != "" {
			break // blobs written there could not be undone with the layout
		}
		layoutDir, _, _ := strings.Cut(dest.StringWithinTransport(), ":")
		dir := filepath.Join(layoutDir, "blobs", "sha256")
		if err := os.MkdirAll(dir, 0o755); err == nil {
			return exportTarget{blobDir: dir, exportBase: true}
		}
		return exportTarget{exportBase: true}
	case "dir", "oci-archive", "docker-archive":
		return exportTarget{exportBase: true}
	}
	return exportTarget{}
}

// destinationContext is the SystemContext of the destination. For an
// uncompressed commit it tells OCI layouts to keep the layers as they are,
// which they would compress otherwise.
func destinationContext(opts CommitOptions) *types.SystemContext {
	if opts.Compression != CompressionNone {
		return opts.SystemContext
	}
	var sys types.SystemContext
	if opts.SystemContext != nil {
		sys = *opts.SystemContext
	}
	sys.OCIAcceptUncompressedLayers = true
	return &sys
}

// snapshotDestination notes what a local destination holds before a copy
// and returns a function that removes what the copy added. For registries
// and containers-storage it does nothing: copy.Image does not make a
// manifest visible there until every blob is in place.
func snapshotDestination(dest types.ImageReference) (undo func()) {
	path := localPath(dest)
	if path == "" {
		return func() {}
	}
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return func() {
			if err := os.RemoveAll(path); err != nil {
				logrus.Warnf("removing %s after a failed commit: %v", path, err)
			}
		}
	}
	// An existing directory (an OCI layout holding other images): remove the
	// blobs that were not there before.
	before := map[string]bool{}
	blobs := filepath.Join(path, "blobs")
	_ = filepath.WalkDir(blobs, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			before[p] = true
		}
		return nil
	})
	return func() {
		_ = filepath.WalkDir(blobs, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !before[p] {
				if err := os.Remove(p); err != nil {
					logrus.Warnf("removing %s after a failed commit: %v", p, err)
				}
			}
			return nil
		})
	}
}

// localPath is the file or directory a local transport writes, "" for the
// others.
func localPath(dest types.ImageReference) string {
	switch dest.Transport().Name() {
	case "oci", "dir", "oci-archive", "docker-archive":
	default:
		return ""
	}
	s := dest.StringWithinTransport()
	if dest.Transport().Name() != "dir" {
		if i := strings.Index(s, ":"); i >= 0 {
			s = s[:i]
		}
	}
	return s
}
