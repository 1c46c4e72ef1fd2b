package bricklayer

import (
	"context"
	"errors"
	"fmt"

	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/types"
)

// containerTransport is the transport of references to working containers.
// Such references are made by [Builder.ImageRef], never parsed from strings.
type containerTransport struct{}

// ContainerTransport is the containers/image transport of the references
// that [Builder.ImageRef] returns.
var ContainerTransport types.ImageTransport = containerTransport{}

func (containerTransport) Name() string { return "bricklayer-container" }

func (containerTransport) ParseReference(reference string) (types.ImageReference, error) {
	return nil, fmt.Errorf("parsing %q: references to working containers are made with Builder.ImageRef", reference)
}

func (containerTransport) ValidatePolicyConfigurationScope(scope string) error { return nil }

// errReadOnly is returned by the operations a working container reference
// does not support.
var errReadOnly = errors.New("a working container reference can only be read")

// containerImageRef refers to a working container as an image: opening a
// source exports the container's new layers and synthesises the config and
// manifest.
type containerImageRef struct {
	builder *Builder
	opts    CommitOptions
	// prepared, when set, is returned by NewImageSource instead of a new
	// source; Commit builds the source itself so that an export error
	// happens before the destination is touched.
	prepared *imageSource
	// signatures are the simple signatures the prepared source serves.
	signatures [][]byte
}

var _ types.ImageReference = (*containerImageRef)(nil)

// ImageRef returns a reference to the working container as an image, as
// [Builder.Commit] would write it with opts. A caller may hand it to its own
// copy.Image. Each NewImageSource on it exports the container anew.
func (b *Builder) ImageRef(opts CommitOptions) (types.ImageReference, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("referring to container %s as an image: %w", b.ContainerName(), err)
	}
	return &containerImageRef{builder: b, opts: opts}, nil
}

func (r *containerImageRef) Transport() types.ImageTransport { return ContainerTransport }

func (r *containerImageRef) StringWithinTransport() string { return r.builder.ContainerName() }

func (r *containerImageRef) DockerReference() reference.Named { return nil }

func (r *containerImageRef) PolicyConfigurationIdentity() string { return "" }

func (r *containerImageRef) PolicyConfigurationNamespaces() []string { return nil }

func (r *containerImageRef) NewImage(ctx context.Context, sys *types.SystemContext) (types.ImageCloser, error) {
	src, err := r.NewImageSource(ctx, sys)
	if err != nil {
		return nil, err
	}
	return image.FromSource(ctx, sys, src)
}

// NewImageSource exports the container's new layers and returns a source
// that serves them with the synthesised config and manifest. The caller must
// Close it; Close removes every file the export wrote.
func (r *containerImageRef) NewImageSource(ctx context.Context, sys *types.SystemContext) (types.ImageSource, error) {
	if r.prepared != nil {
		return preparedSource{r.prepared}, nil
	}
	if sys == nil {
		sys = r.opts.SystemContext
	}
	return newImageSource(ctx, r, sys, exportTarget{})
}

func (r *containerImageRef) NewImageDestination(ctx context.Context, sys *types.SystemContext) (types.ImageDestination, error) {
	return nil, fmt.Errorf("writing to container %s: %w", r.builder.ContainerName(), errReadOnly)
}

func (r *containerImageRef) DeleteImage(ctx context.Context, sys *types.SystemContext) error {
	return fmt.Errorf("deleting container %s as an image: %w", r.builder.ContainerName(), errReadOnly)
}

// preparedSource hands a source that Commit owns to copy.Image, which closes
// what it opens: the Close is left to Commit.
type preparedSource struct{ *imageSource }

func (preparedSource) Close() error { return nil }
