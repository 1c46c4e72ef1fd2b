// Package bricklayer turns a working container held in containers/storage
// into a container image.
//
// A [Builder] owns a working container in a storage.Store: its read-write
// layer, and the OCI and Docker v2s2 image configs that describe it, kept in
// step. Its state is saved in the container's directory, so [OpenBuilder]
// reopens it in a later process. [Builder.Commit] writes the container as an
// image to any containers/image transport (containers-storage, oci:,
// oci-archive:, dir:, docker-archive:, docker://) by handing a reference to
// the container ([Builder.ImageRef]) to copy.Image.
//
// Build with the tags containers_image_openpgp and exclude_graphdriver_btrfs
// to keep C headers out of the build.
package bricklayer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/bricklayer/bricklayer/docker"
	"github.com/bricklayer/bricklayer/internal/copier"
	"github.com/bricklayer/bricklayer/internal/dockerfile"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/manifest"
	is "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/transports"
	"go.podman.io/image/v5/transports/alltransports"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
)

// Errors a caller can test for with errors.Is.
var (
	// ErrContainerNotFound: no container of that name or ID is in the store.
	ErrContainerNotFound = errors.New("container not found")
	// ErrImageNotFound: the base image is neither in the store nor a
	// reference that can be pulled.
	ErrImageNotFound = errors.New("image not found")
	// ErrUnsupportedManifestType: the manifest type is neither OCI nor
	// Docker v2s2.
	ErrUnsupportedManifestType = errors.New("unsupported manifest type")
	// ErrUnsupportedCompression: the compression is unknown, the manifest
	// type cannot describe it (zstd in Docker v2s2), or the compressor has
	// no such level.
	ErrUnsupportedCompression = errors.New("unsupported compression")
	// ErrLayerUnknown: a layer of the container's chain is not in the store.
	ErrLayerUnknown = errors.New("layer not found in the store")
	// ErrLayerCorrupt: a layer's content does not match the digest the
	// store or the image records for it.
	ErrLayerCorrupt = errors.New("layer content does not match its digest")
	// ErrNoSource: a source given to Add or Copy is missing, or its glob
	// pattern matches nothing.
	ErrNoSource = errors.New("no such source")
	// ErrInvalidChmod: AddOptions.Chmod is not an octal mode.
	ErrInvalidChmod = errors.New("invalid mode")
	// ErrInvalidChown: AddOptions.Chown is not "user" or "user:group".
	ErrInvalidChown = copier.ErrInvalidChown
	// ErrUnknownUser: a user or group name in AddOptions.Chown is not in the
	// container's /etc/passwd or /etc/group.
	ErrUnknownUser = copier.ErrUnknownUser
	// ErrPathEscape: an archive entry or hard link target climbs above the
	// directory it is extracted into ("../x").
	ErrPathEscape = copier.ErrPathEscape
	// ErrReservedName: a name to add starts with ".wh.", which a layer can't
	// hold as a file, since it marks a deletion there.
	ErrReservedName = copier.ErrReservedName
	// ErrInvalidPort: a port spec given to [Builder.SetPort] or EXPOSE is not
	// PORT[-PORT][/PROTO] with ports 1-65535 and PROTO tcp, udp or sctp.
	ErrInvalidPort = dockerfile.ErrInvalidPort
	// ErrInvalidSignal: a stop signal is neither a signal name nor a number
	// from 1 to 64.
	ErrInvalidSignal = dockerfile.ErrInvalidSignal
	// ErrInvalidChange: [Builder.ApplyChange] was given an unknown
	// instruction or a malformed one.
	ErrInvalidChange = errors.New("invalid change")
	// ErrInvalidOptions: CommitOptions that contradict each other, or that
	// the manifest type or destination cannot honour.
	ErrInvalidOptions = errors.New("invalid commit options")
	// ErrSigningUnsupported: CommitOptions.SignBy in a build without gpgme
	// (the containers_image_openpgp tag), whose containers/image can verify
	// OpenPGP signatures but not make them; SignByOpenPGPKeyFile can.
	ErrSigningUnsupported = errors.New("signing with a GnuPG keyring needs gpgme, which this build leaves out (sign with an OpenPGP key file instead)")
	// ErrUnreadableName: a directory in a new layer has a name that is not
	// valid UTF-8, and the layer is to be committed into an overlay store,
	// whose driver walks the layer it is given in a way that cannot read
	// such a directory.
	ErrUnreadableName = errors.New("directory name is not valid UTF-8: containers/storage cannot read its contents into a layer")
)

// Scratch is the FromImage value for a builder with no base image.
const Scratch = "scratch"

// stateFile is the name of the builder's state in the container's directory.
const stateFile = "bricklayer.json"

// stateVersion is written in every state file; a file of another version is
// refused.
const stateVersion = 1

// BuilderOptions say how [NewBuilder] makes a working container.
type BuilderOptions struct {
	// FromImage is the base image: "scratch" (or "") for none, the name or ID
	// of an image in the store, or a containers/image transport reference
	// ("oci:DIR:TAG", "docker://…"), which is pulled into the store first.
	FromImage string
	// Container names the working container; "" derives a name from the
	// base image, "NAME-working-container", made unique with a suffix.
	Container string
	// SystemContext is used to pull FromImage; nil means defaults.
	SystemContext *types.SystemContext
	// SignaturePolicyPath is the policy checked when pulling FromImage; ""
	// means the system default, and accept-anything when none exists.
	SignaturePolicyPath string
	// ReportWriter receives copy.Image's progress while pulling; nil is quiet.
	ReportWriter io.Writer
}

// Builder is a working container and the image configs that describe it.
// Its methods may be called from several goroutines.
type Builder struct {
	store storage.Store

	mu    sync.Mutex // guards state and the state file
	state builderState
}

// builderState is what a Builder saves in the container's directory.
type builderState struct {
	Version       int    `json:"version"`
	ContainerID   string `json:"container_id"`
	ContainerName string `json:"container_name"`
	// FromImage is what the user asked for; FromImageID the image it
	// resolved to in the store ("" for scratch).
	FromImage   string `json:"from_image,omitempty"`
	FromImageID string `json:"from_image_id,omitempty"`
	// FromImageOrigin is the transport reference the base image was pulled
	// from, where its layer blobs can be fetched again as they were.
	FromImageOrigin string `json:"from_image_origin,omitempty"`
	// BaseLayers describe the base image's layers, bottom first.
	BaseLayers   []baseLayer       `json:"base_layers,omitempty"`
	OCIConfig    v1.Image          `json:"oci_config"`
	DockerConfig docker.V2Image    `json:"docker_config"`
	CreatedBy    string            `json:"created_by,omitempty"`
	HistoryNote  string            `json:"history_comment,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	MountPoint   string            `json:"mount_point,omitempty"`
}

// baseLayer is one layer of the base image: its storage layer and the blob
// the base image's manifest gives for it.
type baseLayer struct {
	LayerID    string        `json:"layer_id"`
	DiffID     digest.Digest `json:"diff_id"`
	Descriptor v1.Descriptor `json:"descriptor"`
}

// descriptor is the descriptor of the base layer's blob as its image's
// manifest gave it, but for a blob whose digest is the layer's diffID: that
// blob is the uncompressed tar, whatever its media type says.
// containers/image's docker-archive source labels an archive's layers gzip
// though the archive holds them uncompressed (copy.Image, which tells the
// compression by reading the blob, does not mind), so a base pulled from
// one would otherwise be served as an uncompressed blob labelled gzip.
func (bl baseLayer) descriptor() v1.Descriptor {
	d := bl.Descriptor
	if d.Digest != "" && d.Digest == bl.DiffID {
		if c, ok := plainLayerCompression(d.MediaType); ok && c != CompressionNone {
			d.MediaType = v1.MediaTypeImageLayer
		}
	}
	return d
}

// originBlob says whether the base layer's blob is one only the image's
// origin has: named, and not the uncompressed tar the store serves.
func (bl baseLayer) originBlob() bool {
	return bl.Descriptor.Digest != "" && bl.Descriptor.Digest != bl.DiffID
}

// NewBuilder makes a working container from opts.FromImage and saves its
// state. The base image's layers, config and history are inherited.
func NewBuilder(ctx context.Context, store storage.Store, opts BuilderOptions) (*Builder, error) {
	b := &Builder{store: store, state: builderState{Version: stateVersion, FromImage: opts.FromImage}}
	imageID := ""
	if opts.FromImage == "" || opts.FromImage == Scratch {
		b.state.FromImage = Scratch
		b.state.OCIConfig = v1.Image{Platform: v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}}
		b.state.DockerConfig = dockerFromOCI(b.state.OCIConfig)
	} else {
		id, origin, err := resolveBaseImage(ctx, store, opts)
		if err != nil {
			return nil, err
		}
		imageID = id
		b.state.FromImageID, b.state.FromImageOrigin = id, origin
		if err := b.loadBaseImage(ctx, opts.SystemContext); err != nil {
			return nil, err
		}
	}
	name, err := uniqueContainerName(store, opts.Container, opts.FromImage)
	if err != nil {
		return nil, err
	}
	ctr, err := store.CreateContainer("", []string{name}, imageID, "", "", nil)
	if err != nil {
		return nil, fmt.Errorf("creating container %q from %q: %w", name, b.state.FromImage, err)
	}
	b.state.ContainerID, b.state.ContainerName = ctr.ID, name
	if err := b.Save(); err != nil {
		if delErr := store.DeleteContainer(ctr.ID); delErr != nil {
			logrus.Debugf("removing container %s after a failed save: %v", ctr.ID, delErr)
		}
		return nil, err
	}
	if comparesTrees(store) {
		// Changes made from now on must show in the ctimes (see
		// changed_since.go).
		if dir, err := store.ContainerDirectory(ctr.ID); err != nil {
			logrus.Debugf("locating the directory of container %s: %v", ctr.ID, err)
		} else if err := waitPastCtime(dir, ctr.Created); err != nil {
			logrus.Warnf("container %s: %v; a file rewritten at once with its size and mtime kept may be missed", name, err)
		}
	}
	logrus.Debugf("created working container %s (%s) from %q", ctr.ID, name, b.state.FromImage)
	return b, nil
}

// OpenBuilder reopens the working container nameOrID. A container another
// tool made (buildah, podman) has no bricklayer state: it is opened with the
// config buildah keeps for it, when buildah made it, else with the config of
// the image it was made from (see adopt), and its state is saved on the
// first change.
func OpenBuilder(store storage.Store, nameOrID string) (*Builder, error) {
	ctr, err := store.Container(nameOrID)
	if err != nil {
		if errors.Is(err, storage.ErrContainerUnknown) {
			return nil, fmt.Errorf("opening container %q: %w", nameOrID, ErrContainerNotFound)
		}
		return nil, fmt.Errorf("opening container %q: %w", nameOrID, err)
	}
	dir, err := store.ContainerDirectory(ctr.ID)
	if err != nil {
		return nil, fmt.Errorf("locating the directory of container %q: %w", nameOrID, err)
	}
	b := &Builder{store: store}
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return b.adopt(ctr, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the state of container %q: %w", nameOrID, err)
	}
	if err := json.Unmarshal(data, &b.state); err != nil {
		return nil, fmt.Errorf("parsing the state of container %q (%s): %w", nameOrID, filepath.Join(dir, stateFile), err)
	}
	if b.state.Version != stateVersion {
		return nil, fmt.Errorf("state of container %q has version %d, this bricklayer reads %d", nameOrID, b.state.Version, stateVersion)
	}
	b.state.ContainerID = ctr.ID
	return b, nil
}

// Save writes the builder's state to the container's directory, atomically:
// a reader sees the old state or the new one, never a mix.
func (b *Builder) Save() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.saveLocked()
}

func (b *Builder) saveLocked() error {
	dir, err := b.store.ContainerDirectory(b.state.ContainerID)
	if err != nil {
		return fmt.Errorf("locating the directory of container %s: %w", b.state.ContainerName, b.containerGone(err))
	}
	if err := writeJSONAtomic(filepath.Join(dir, stateFile), &b.state); err != nil {
		return fmt.Errorf("saving the state of container %s: %w", b.state.ContainerName, err)
	}
	return nil
}

// containerGone adds ErrContainerNotFound to err, an error met using the
// builder's container, when the store no longer holds that container (it
// was deleted, by another builder or process). The store's own errors do
// not tell: asked for a container ID it does not hold, it may report an
// unknown container, not a container, or, taking the ID for a layer's, an
// unknown layer; a mount point noted before is simply gone.
func (b *Builder) containerGone(err error) error {
	if _, cerr := b.store.Container(b.state.ContainerID); errors.Is(cerr, storage.ErrContainerUnknown) {
		return fmt.Errorf("%w: %w", ErrContainerNotFound, err)
	}
	return err
}

// writeJSONAtomic writes v as indented JSON to path through a temporary
// file in the same directory, synced and renamed over path: a reader sees
// the old content or the new, never a mix, and no temporary file is left.
func writeJSONAtomic(path string, v any) (err error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// ContainerID is the working container's ID in the store.
func (b *Builder) ContainerID() string { return b.state.ContainerID }

// ContainerName is the working container's name.
func (b *Builder) ContainerName() string { return b.state.ContainerName }

// FromImage is the base image as given to [NewBuilder] ("scratch" for none).
func (b *Builder) FromImage() string { return b.state.FromImage }

// FromImageID is the ID of the base image in the store, "" for scratch.
func (b *Builder) FromImageID() string { return b.state.FromImageID }

// Store is the store that holds the working container.
func (b *Builder) Store() storage.Store { return b.store }

// MountPoint is where the container's root filesystem is mounted, or "" when
// it is not mounted by this builder.
func (b *Builder) MountPoint() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.MountPoint
}

// Mount mounts the container's root filesystem and returns where.
func (b *Builder) Mount() (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	mp, err := b.store.Mount(b.state.ContainerID, "")
	if err != nil {
		return "", fmt.Errorf("mounting container %s: %w", b.state.ContainerName, b.containerGone(err))
	}
	b.state.MountPoint = mp
	if err := b.saveLocked(); err != nil {
		return "", err
	}
	return mp, nil
}

// Unmount undoes one Mount.
func (b *Builder) Unmount() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	mounted, err := b.store.Unmount(b.state.ContainerID, false)
	if err != nil {
		return fmt.Errorf("unmounting container %s: %w", b.state.ContainerName, b.containerGone(err))
	}
	if !mounted {
		b.state.MountPoint = ""
	}
	return b.saveLocked()
}

// Delete removes the working container, its layer and its saved state.
// The builder must not be used afterwards: its methods that reach the store
// (Mount, Save, Copy, Commit, ...) then fail with [ErrContainerNotFound],
// as do those of other builders of the same container.
func (b *Builder) Delete() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.store.Unmount(b.state.ContainerID, true); err != nil && !errors.Is(err, storage.ErrContainerUnknown) && !errors.Is(err, storage.ErrLayerUnknown) {
		logrus.Debugf("unmounting container %s before removal: %v", b.state.ContainerID, err)
	}
	if err := b.store.DeleteContainer(b.state.ContainerID); err != nil {
		// DeleteContainer reports an unknown ID as ErrNotAContainer.
		return fmt.Errorf("removing container %s: %w", b.state.ContainerName, b.containerGone(err))
	}
	b.state.MountPoint = ""
	return nil
}

// resolveBaseImage finds opts.FromImage in the store, pulling it first when
// it is a transport reference. It returns the image ID and, for a pull, the
// reference it was pulled from.
func resolveBaseImage(ctx context.Context, store storage.Store, opts BuilderOptions) (id, origin string, err error) {
	name := opts.FromImage
	if srcRef, perr := alltransports.ParseImageName(name); perr == nil {
		if srcRef.Transport().Name() == is.Transport.Name() {
			name = srcRef.StringWithinTransport()
			if i := strings.Index(name, "]"); strings.HasPrefix(name, "[") && i > 0 {
				name = name[i+1:]
			}
		} else {
			id, err := pullImage(ctx, store, srcRef, opts)
			switch {
			case err != nil && ctx.Err() != nil:
				return "", "", fmt.Errorf("base image %q: %w", name, err)
			case err != nil:
				return "", "", fmt.Errorf("base image %q: %w: %w", name, ErrImageNotFound, err)
			}
			return id, transports.ImageName(srcRef), nil
		}
	}
	if img, err := store.Image(name); err == nil {
		return img.ID, "", nil
	}
	ref, err := is.Transport.ParseStoreReference(store, name)
	if err != nil {
		return "", "", fmt.Errorf("looking up image %q: %w (%w)", opts.FromImage, ErrImageNotFound, err)
	}
	img, err := is.Transport.GetStoreImage(store, ref)
	if err != nil {
		return "", "", fmt.Errorf("looking up image %q: %w", opts.FromImage, ErrImageNotFound)
	}
	return img.ID, "", nil
}

// pullImage copies srcRef into the store and returns the new image's ID. An
// image with a registry name keeps it; others are stored without a name.
func pullImage(ctx context.Context, store storage.Store, srcRef types.ImageReference, opts BuilderOptions) (string, error) {
	var named reference.Named
	if dr := srcRef.DockerReference(); dr != nil {
		named = dr
	} else {
		tmp, err := reference.ParseNormalizedNamed("localhost/bricklayer-pull:" + randomHex(8))
		if err != nil {
			return "", err
		}
		named = tmp
	}
	destRef, err := is.Transport.NewStoreReference(store, named, "")
	if err != nil {
		return "", fmt.Errorf("pulling %s: %w", transports.ImageName(srcRef), err)
	}
	policy, err := policyContext(opts.SignaturePolicyPath, opts.SystemContext)
	if err != nil {
		return "", err
	}
	defer policy.Destroy() //nolint:errcheck // nothing to report
	manifestBytes, err := copy.Image(ctx, policy, destRef, srcRef, &copy.Options{
		ReportWriter:   opts.ReportWriter,
		SourceCtx:      opts.SystemContext,
		DestinationCtx: opts.SystemContext,
	})
	if err != nil {
		return "", fmt.Errorf("pulling %s: %w", transports.ImageName(srcRef), err)
	}
	img, err := is.Transport.GetStoreImage(store, destRef)
	if err != nil {
		return "", fmt.Errorf("finding %s in the store after pulling it: %w", transports.ImageName(srcRef), err)
	}
	if srcRef.DockerReference() == nil {
		if err := store.RemoveNames(img.ID, []string{named.String()}); err != nil {
			logrus.Debugf("removing temporary name %s from image %s: %v", named, img.ID, err)
		}
	}
	mdigest, _ := manifest.Digest(manifestBytes)
	logrus.Debugf("pulled %s as image %s (manifest %s)", transports.ImageName(srcRef), img.ID, mdigest)
	return img.ID, nil
}

// loadBaseImage reads the base image's configs, history and layer
// descriptors into the builder's state.
func (b *Builder) loadBaseImage(ctx context.Context, sys *types.SystemContext) error {
	id := b.state.FromImageID
	ref, err := is.Transport.NewStoreReference(b.store, nil, id)
	if err != nil {
		return fmt.Errorf("referring to base image %s: %w", id, err)
	}
	img, err := ref.NewImage(ctx, sys)
	if err != nil {
		return fmt.Errorf("opening base image %s: %w", id, err)
	}
	defer img.Close()
	ociConfig, err := img.OCIConfig(ctx)
	if err != nil {
		return fmt.Errorf("reading the config of base image %s: %w", id, err)
	}
	_, mimeType, err := img.Manifest(ctx)
	if err != nil {
		return fmt.Errorf("reading the manifest of base image %s: %w", id, err)
	}
	b.state.OCIConfig = *ociConfig
	b.state.DockerConfig = dockerFromOCI(*ociConfig)
	if manifest.NormalizedMIMEType(mimeType) == manifest.DockerV2Schema2MediaType {
		blob, err := img.ConfigBlob(ctx)
		if err != nil {
			return fmt.Errorf("reading the config of base image %s: %w", id, err)
		}
		var dc docker.V2Image
		if err := json.Unmarshal(blob, &dc); err != nil {
			return fmt.Errorf("parsing the Docker config of base image %s: %w", id, err)
		}
		b.state.DockerConfig = dc
	}
	stImage, err := b.store.Image(id)
	if err != nil {
		return fmt.Errorf("reading base image %s: %w", id, err)
	}
	chain, err := layerChain(b.store, stImage.TopLayer)
	if err != nil {
		return fmt.Errorf("walking the layers of base image %s: %w", id, err)
	}
	infos := img.LayerInfos()
	diffIDs := ociConfig.RootFS.DiffIDs
	if len(infos) != len(chain) || len(diffIDs) != len(chain) {
		logrus.Warnf("base image %s: manifest lists %d layers and config %d diffIDs for %d stored layers; its layers will be exported again", id, len(infos), len(diffIDs), len(chain))
		for _, l := range chain {
			b.state.BaseLayers = append(b.state.BaseLayers, baseLayer{LayerID: l.ID, DiffID: l.UncompressedDigest})
		}
		return nil
	}
	for i, l := range chain {
		b.state.BaseLayers = append(b.state.BaseLayers, baseLayer{
			LayerID: l.ID,
			DiffID:  diffIDs[i],
			Descriptor: v1.Descriptor{
				MediaType:   infos[i].MediaType,
				Digest:      infos[i].Digest,
				Size:        infos[i].Size,
				URLs:        infos[i].URLs,
				Annotations: infos[i].Annotations,
			},
		})
	}
	return nil
}

// layerChain returns the layer top and its ancestors, bottom first.
func layerChain(store storage.Store, top string) ([]*storage.Layer, error) {
	var chain []*storage.Layer
	for id := top; id != ""; {
		l, err := store.Layer(id)
		if err != nil {
			if errors.Is(err, storage.ErrLayerUnknown) {
				return nil, fmt.Errorf("layer %s: %w", id, ErrLayerUnknown)
			}
			return nil, fmt.Errorf("reading layer %s: %w", id, err)
		}
		chain = append(chain, l)
		id = l.Parent
		if len(chain) > 1000 {
			return nil, fmt.Errorf("layer %s: chain longer than 1000 layers, or a loop", top)
		}
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain, nil
}

// uniqueContainerName returns want, or when it is empty a name derived from
// the base image that no container has yet.
func uniqueContainerName(store storage.Store, want, fromImage string) (string, error) {
	if want != "" {
		if nameInUse(store, want) {
			return "", fmt.Errorf("creating container %q: the name is in use", want)
		}
		return want, nil
	}
	base := "scratch"
	if fromImage != "" && fromImage != Scratch {
		// The last path component without tag or digest: "alpine" for
		// docker://docker.io/library/alpine:3.20 or localhost/alpine:latest.
		base, _, _ = strings.Cut(fromImage, "@")
		if t, rest, ok := strings.Cut(base, ":"); ok && transports.Get(t) != nil {
			base = strings.TrimPrefix(rest, "//")
		}
		if i := strings.LastIndexByte(base, '/'); i >= 0 && i < len(base)-1 {
			base = base[i+1:]
		}
		if i := strings.LastIndexByte(base, ':'); i > 0 {
			base = base[:i]
		}
		base = strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
				return r
			}
			return '-'
		}, base)
		if len(base) > 32 {
			base = base[:32]
		}
	}
	name := base + "-working-container"
	for i := 2; ; i++ {
		if !nameInUse(store, name) {
			return name, nil
		}
		name = fmt.Sprintf("%s-working-container-%d", base, i)
	}
}

// nameInUse reports whether a container has name as its name or ID. The
// store also resolves unique ID prefixes, which do not count: a container
// may be named "b" while another's ID starts with b.
func nameInUse(store storage.Store, name string) bool {
	c, err := store.Container(name)
	return err == nil && (c.ID == name || slices.Contains(c.Names, name))
}
