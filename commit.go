package bricklayer

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bricklayer/bricklayer/docker"
	"github.com/bricklayer/bricklayer/internal/layerexport"
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
	// Docker v2s2. Anything else is [ErrUnsupportedManifestType]. A
	// destination that cannot hold it (an OCI layout holds only OCI
	// manifests) gets the image converted by copy.Image, with a warning;
	// [CommitResult.ManifestType] says what was written.
	ManifestType string
	// Compression is the compression of the layers this commit writes.
	// Layers written into containers-storage (any store), a docker-archive
	// or a dir: directory with DirForceDecompress are stored uncompressed
	// whatever this says, and are exported uncompressed. A registry
	// (docker://) gets gzip layers when this is CompressionNone, as
	// containers/image compresses every layer it pushes.
	Compression Compression
	// CompressionLevel is the compressor's level; 0 means its default
	// (gzip 4, zstd 3). See [CheckCompressionLevel] for the range.
	CompressionLevel int
	// HistoryTimestamp, when set, is the image's created time and that of the
	// history entries this commit adds; nil means now (or SourceDateEpoch).
	// It may not be combined with SourceDateEpoch.
	HistoryTimestamp *time.Time
	// SourceDateEpoch, when set, is the time a reproducible build records:
	// the image's created time, that of the history entries this commit adds
	// and of the directories ExtraImageContent makes, and the latest file
	// modification time that RewriteTimestamps lets through. With it, the
	// same content and options give the same config and manifest bytes
	// whenever and wherever the commit runs (file modification times are the
	// content's: set them, or use RewriteTimestamps).
	SourceDateEpoch *time.Time
	// RewriteTimestamps clamps the modification time of every entry in the
	// layers this commit writes to SourceDateEpoch (or HistoryTimestamp, one
	// of which must be set): a later time is replaced by it. Base image
	// layers are never rewritten; a Squash layer, which holds the base's
	// files too, is.
	RewriteTimestamps bool
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
	// (and the base layers the commit exports) are exported, before
	// anything is copied: after every read of a layer's diff, and once with
	// Done set when its blob is complete. A commit into the builder's own
	// store reports each new layer as it is written there; its blob is the
	// uncompressed diff (a layer changed since the container's last commit
	// there is read twice, to check it and to write it: its Read count
	// starts over). A base layer whose blob is taken
	// from the destination's layout or the blob cache instead gets one
	// report, Done, with Taken saying where from. Layers are
	// exported concurrently, so it must be safe to call from several
	// goroutines, and it should return quickly.
	ExportProgress func(LayerProgress)
	// AdditionalTags are more names for the image. For a containers-storage
	// destination they are names added to the image ("localhost/app:1"); for
	// docker:// they are registry references ("host/repo:tag") the manifest
	// is also pushed to; for oci: they are more tags in the same layout. Other
	// destinations refuse them with [ErrInvalidOptions].
	AdditionalTags []string
	// LayerParallelism is how many layers are exported at once; 0 means 2.
	// Of those, one at a time is compressed: each compressor already runs
	// on several goroutines, and two at once take more memory than the
	// CLI's heap limit lets them use well. A base layer's diff is rebuilt
	// from its tar-split under the layer store's read lock, so base layers
	// are read side by side too; one that must be read through the store's
	// Diff instead (no tar-split, a separate image store) holds the write
	// lock until it is closed, and is read alone.
	LayerParallelism int
	// BlobCacheDir, when set, is a directory (created if need be) that keeps
	// the compressed blobs of the base image's layers that a commit
	// exports, for the next commit on the same base to take instead of
	// compressing them again: into a new OCI layout, a dir: directory, an
	// archive, or a registry that lacks them. A blob is kept under its
	// layer's diffID, compression, level and compressor version, so a
	// commit makes the same image with the cache as without it, and each
	// blob is checked before it is taken. Commits may share the directory;
	// nothing in it is ever removed but a blob that fails its check and
	// the temporary files of killed commits. An uncompressed commit does
	// not use it, nor do the new layers.
	BlobCacheDir string

	// Squash writes the image as a single layer holding the container's whole
	// tree, base image included (and ExtraImageContent); the base image's
	// history entries are kept, marked empty_layer. It excludes
	// SquashNewLayers and EmptyLayer.
	Squash bool
	// SquashNewLayers keeps the base image's layers as they are and writes
	// everything added since (the container's layers and ExtraImageContent)
	// as one layer with one history entry. It excludes Squash and EmptyLayer.
	SquashNewLayers bool
	// OmitHistory writes a config without history, the base image's included.
	OmitHistory bool
	// EmptyLayer writes no layer for the container's changes, which are left
	// out of the image: the image is the base image's layers (and
	// ExtraImageContent's), with a history entry marked empty_layer for the
	// commit, as a config-only Dockerfile instruction makes.
	EmptyLayer bool
	// ExtraImageContent maps a path in the image ("/etc/app.conf") to a host
	// file, directory (added with its contents) or symlink, added to the image
	// in a layer of its own on top of the container's, owned by root. The
	// container is not changed. Directories the paths need that the container
	// lacks are made with mode 0755. Host hard links are added as separate
	// files, and extended attributes are not kept.
	ExtraImageContent map[string]string
	// UnsetEnv and UnsetLabels name environment variables and labels removed
	// from the image's config; the builder keeps them.
	UnsetEnv    []string
	UnsetLabels []string
	// Annotations are added to the manifest's annotations, over the
	// builder's. OCI manifests only: with Docker v2s2 they are
	// [ErrInvalidOptions].
	Annotations map[string]string
	// LayerAnnotations are set on the descriptor of each layer this commit
	// writes (not on the base image's). OCI manifests only.
	LayerAnnotations map[string]string
	// IIDFile, when set, is a file the image ID is written to once the
	// commit succeeds, as "sha256:" and the hex ID: the ID in the store for a
	// containers-storage destination, else the config digest, which is the ID
	// any store gives the image.
	IIDFile string

	// SignBy is the fingerprint of an OpenPGP key in the user's GnuPG keyring
	// to make a simple signature with (copy.Options.SignBy). It needs gpgme:
	// a build with the containers_image_openpgp tag cannot sign that way,
	// and refuses SignBy with [ErrSigningUnsupported] before anything is
	// written. SignByOpenPGPKeyFile works in every build.
	SignBy string
	// SignByOpenPGPKeyFile is an OpenPGP private key file (armored or not,
	// as gpg --export-secret-keys writes it) that bricklayer makes simple
	// signatures with itself, one for the destination's name (or
	// SignIdentity) and one for each registry name in AdditionalTags. They
	// are stored where the destination keeps simple signatures: registries.d
	// lookaside for registries, dir:, containers-storage; oci: layouts keep
	// none and refuse them. The manifest must reach the destination as the
	// commit made it (no conversion of format or compression), or copy.Image
	// refuses to invalidate the signatures. Only Commit signs: the source of
	// [Builder.ImageRef] serves no signatures.
	SignByOpenPGPKeyFile string
	// SignPassphrase is the passphrase of the SignBy or SignByOpenPGPKeyFile
	// key.
	SignPassphrase string
	// SignBySigstorePrivateKeyFile is a sigstore (cosign) private key file to
	// sign the image with, and SignSigstorePrivateKeyPassphrase its
	// passphrase. Registries store the signature as an attachment when
	// registries.d enables use-sigstore-attachments, else in lookaside.
	SignBySigstorePrivateKeyFile     string
	SignSigstorePrivateKeyPassphrase []byte
	// SignIdentity is the name the signatures vouch for; nil means the
	// destination's registry name, which destinations without one (oci:,
	// dir:) lack, so signing them needs it.
	SignIdentity reference.Named
	// RetryCount is how many more times the copy to dest is tried after it
	// fails with an error that may pass: a network failure, a registry
	// that is down, overloaded or failing (HTTP 429 or 5xx). The layers are
	// exported once, before the first try, and every try copies the same
	// blobs. A local destination is put back as the export left it before
	// each retry, so that no try meets what a failed one wrote. 0 means one
	// try.
	RetryCount int
	// RetryDelay is the wait before each retry; 0 means 2 seconds.
	RetryDelay time.Duration
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

// CheckCompressionLevel reports whether level is one that compression c
// has, as [CommitOptions.CompressionLevel]: gzip's run from -2 (Huffman
// coding only) to 9, zstd's from 1 to 22; 0 is the default, and
// CompressionNone ignores the level. An error wraps
// [ErrUnsupportedCompression].
func CheckCompressionLevel(c Compression, level int) error {
	if err := layerexport.CheckLevel(exportAlgorithm(c), level); err != nil {
		return fmt.Errorf("%w: %w", ErrUnsupportedCompression, err)
	}
	return nil
}

// CommitResult is what [Builder.Commit] wrote.
type CommitResult struct {
	// ImageID is the image's ID when the destination is containers-storage,
	// "" otherwise.
	ImageID string
	// ManifestDigest is the digest of the manifest written.
	ManifestDigest digest.Digest
	// ConfigDigest is the digest of the config: the image ID that any
	// store gives the image.
	ConfigDigest digest.Digest
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
	if err := CheckCompressionLevel(o.Compression, o.CompressionLevel); err != nil {
		return err
	}
	if o.LayerParallelism < 0 {
		return fmt.Errorf("LayerParallelism %d: must not be negative: %w", o.LayerParallelism, ErrInvalidOptions)
	}
	if o.RetryCount < 0 || o.RetryDelay < 0 {
		return fmt.Errorf("RetryCount %d, RetryDelay %s: must not be negative: %w", o.RetryCount, o.RetryDelay, ErrInvalidOptions)
	}
	return o.validateCombinations()
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
// wrote to a local destination, before a retry too. The container is never
// changed. Commits to one local path take turns, and commits to an OCI
// layout or dir: directory take turns with other processes' too (see
// claimLocalDestination); a commit waiting its turn stops when ctx ends.
func (b *Builder) Commit(ctx context.Context, dest types.ImageReference, opts CommitOptions) (CommitResult, error) {
	destName := transports.ImageName(dest)
	if err := opts.validate(); err != nil {
		return CommitResult{}, fmt.Errorf("committing container %s to %s: %w", b.ContainerName(), destName, err)
	}
	tags, err := tagRefs(dest, opts.AdditionalTags)
	if err != nil {
		return CommitResult{}, fmt.Errorf("committing container %s to %s: %w", b.ContainerName(), destName, err)
	}
	sign, err := openPGPSigning(dest, opts)
	if err != nil {
		return CommitResult{}, fmt.Errorf("committing container %s to %s: %w", b.ContainerName(), destName, err)
	}
	if err := checkSigstoreKey(opts); err != nil {
		return CommitResult{}, fmt.Errorf("committing container %s to %s: %w", b.ContainerName(), destName, err)
	}
	switch {
	case storesUncompressed(dest, opts.SystemContext) && opts.Compression != CompressionNone:
		// copy.Image would only undo the export's compression, at several
		// times its cost.
		logrus.Debugf("committing container %s to %s: layers exported uncompressed, as the destination stores them", b.ContainerName(), destName)
		opts.Compression, opts.CompressionLevel = CompressionNone, 0
	case dest.Transport().Name() == "docker" && opts.Compression == CompressionNone:
		// copy.Image compresses every uncompressed layer it pushes, with
		// gzip, one stream at a time; the export compresses on every core
		// and uploads while it does.
		logrus.Debugf("committing container %s to %s: layers exported gzip-compressed, as a registry takes them", b.ContainerName(), destName)
		opts.Compression, opts.CompressionLevel = CompressionGzip, 0
	}
	ref := &containerImageRef{builder: b, opts: opts}
	undo, release, err := claimLocalDestination(ctx, dest)
	if err != nil {
		return CommitResult{}, fmt.Errorf("committing container %s to %s: %w", b.ContainerName(), destName, err)
	}
	defer release()
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
	if sign != nil {
		if ref.signatures, err = sign(src.manifest); err != nil {
			undo()
			src.removeCreatedLayers()
			return CommitResult{}, fmt.Errorf("committing container %s to %s: %w", b.ContainerName(), destName, err)
		}
	}

	policy, err := policyContext(opts.SignaturePolicyPath, opts.SystemContext)
	if err != nil {
		undo()
		src.removeCreatedLayers()
		return CommitResult{}, err
	}
	defer policy.Destroy() //nolint:errcheck // nothing to report

	copyDest, written, abandon, err := archiveViaTemp(dest)
	if err != nil {
		undo()
		src.removeCreatedLayers()
		return CommitResult{}, fmt.Errorf("committing container %s to %s: %w", b.ContainerName(), destName, err)
	}
	if target.linkInto != "" {
		copyDest = linkingReference{ImageReference: dest, dir: target.linkInto, blobs: src.blobFiles()}
	}
	reset := retryReset(copyDest)
	tried := false
	manifestBytes, err := withRetries(ctx, opts.RetryCount, opts.RetryDelay, "copying container "+b.ContainerName()+" to "+destName, func() ([]byte, error) {
		if tried {
			reset()
		}
		tried = true
		return copy.Image(ctx, policy, copyDest, ref, opts.copyOptions())
	})
	if err == nil {
		err = written()
	} else {
		abandon()
		err = trimmedError{err}
	}
	if err != nil {
		undo()
		src.removeCreatedLayers()
		return CommitResult{}, fmt.Errorf("committing container %s to %s: %w", b.ContainerName(), destName, err)
	}
	// The image holds the layers written for it; one that lost its chain ID
	// to a concurrent commit of the same content is unused, and removed.
	src.removeCreatedLayers()
	res := CommitResult{Manifest: manifestBytes, ManifestType: manifest.GuessMIMEType(manifestBytes)}
	if opts.ManifestType != "" && res.ManifestType != opts.ManifestType {
		// copy.Image converts to what the destination takes: an OCI
		// layout holds only OCI manifests, a docker-archive only v2s2.
		logrus.Warnf("committing container %s to %s: the destination took the image as %s, not %s", b.ContainerName(), destName, res.ManifestType, opts.ManifestType)
	}
	if res.ManifestDigest, err = manifest.Digest(manifestBytes); err != nil {
		return CommitResult{}, fmt.Errorf("digesting the manifest written to %s: %w", destName, err)
	}
	m, err := manifest.FromBlob(manifestBytes, res.ManifestType)
	if err != nil {
		return CommitResult{}, fmt.Errorf("reading the manifest written to %s: %w", destName, err)
	}
	res.ConfigDigest = m.ConfigInfo().Digest
	if named := dest.DockerReference(); named != nil {
		if c, err := reference.WithDigest(reference.TrimNamed(named), res.ManifestDigest); err == nil {
			res.Canonical = c
		}
	}
	if dest.Transport().Name() == is.Transport.Name() {
		// The store names the image by its config's digest; its name may
		// have moved on to another commit's image already.
		img, err := b.store.Image(res.ConfigDigest.Encoded())
		if err != nil {
			// A reference that gave the image an ID of its own.
			img, err = is.Transport.GetStoreImage(b.store, dest)
		}
		if err != nil {
			return CommitResult{}, fmt.Errorf("finding the image committed to %s: %w", destName, err)
		}
		res.ImageID = img.ID
	}
	if err := b.addTags(ctx, policy, dest, res.ImageID, tags, opts); err != nil {
		return res, err
	}
	if opts.IIDFile != "" {
		if err := writeIIDFile(opts.IIDFile, res); err != nil {
			return res, err
		}
	}
	logrus.Debugf("committed container %s to %s: manifest %s", b.ContainerName(), destName, res.ManifestDigest)
	return res, nil
}

// storesUncompressed says whether dest keeps every layer uncompressed,
// whatever blob it is given: a containers-storage store, a docker-archive,
// or a dir: directory told to decompress.
func storesUncompressed(dest types.ImageReference, sys *types.SystemContext) bool {
	switch dest.Transport().Name() {
	case is.Transport.Name(), "docker-archive":
		return true
	case "dir":
		return sys != nil && sys.DirForceDecompress
	}
	return false
}

// exportTarget picks where the new layers are written for dest: straight
// into the store when dest is the builder's own store, into the layout when
// dest is an OCI layout, else a private temporary directory, from which
// they are linked into a dir: directory on the same filesystem.
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
		if layoutDir == "" {
			// "oci:" has no path: blobs would land in the working directory,
			// and the copy fails anyway.
			return exportTarget{exportBase: true}
		}
		dir := filepath.Join(layoutDir, "blobs", "sha256")
		if err := os.MkdirAll(dir, 0o755); err == nil {
			return exportTarget{blobDir: dir, exportBase: true}
		}
		return exportTarget{exportBase: true}
	case "dir":
		// A dir: directory takes blobs as they are unless told to
		// (de)compress them; then copy.Image writes its own.
		if sys == nil || (!sys.DirForceCompress && !sys.DirForceDecompress) {
			if dir := localPath(dest); sameFilesystem(bigFilesDir(sys), dir) {
				return exportTarget{exportBase: true, linkInto: dir}
			}
		}
		return exportTarget{exportBase: true}
	case "oci-archive", "docker-archive":
		return exportTarget{exportBase: true}
	case "docker":
		return exportTarget{upload: dest, exportBase: true}
	}
	return exportTarget{}
}

// destinationContext is the SystemContext of the destination. It tells OCI
// layouts to keep uncompressed layers as they are, which they would compress
// otherwise: the layers the commit writes are already compressed as asked,
// and base image layers are kept as the base image has them.
func destinationContext(opts CommitOptions) *types.SystemContext {
	var sys types.SystemContext
	if opts.SystemContext != nil {
		sys = *opts.SystemContext
	}
	sys.OCIAcceptUncompressedLayers = true
	return &sys
}

// trimmedError is err with the leading spaces of its message dropped:
// copy.Image adds a failure to close the destination or the source as
// " (dest: ...): ", which would follow our own ": " with two spaces.
type trimmedError struct{ err error }

func (e trimmedError) Error() string { return strings.TrimLeft(e.err.Error(), " ") }

func (e trimmedError) Unwrap() error { return e.err }
