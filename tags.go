package bricklayer

import (
	"context"
	"fmt"
	"os"
	"strings"

	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/signature"
	is "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/transports"
	"go.podman.io/image/v5/types"
)

// This file gives a committed image the names of CommitOptions.AdditionalTags
// and writes CommitOptions.IIDFile.

// tagRefs are the references an image written to dest is copied to for
// tags. A containers-storage destination needs none: its tags are names
// added to the image in the store. Other transports than docker:// and oci:
// refuse tags.
func tagRefs(dest types.ImageReference, tags []string) ([]types.ImageReference, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	var refs []types.ImageReference
	switch dest.Transport().Name() {
	case is.Transport.Name():
		return nil, nil
	case "docker":
		for _, tag := range tags {
			named, err := reference.ParseNormalizedNamed(tag)
			if err != nil {
				return nil, fmt.Errorf("additional tag %q: %w (%w)", tag, ErrInvalidOptions, err)
			}
			ref, err := docker.NewReference(reference.TagNameOnly(named))
			if err != nil {
				return nil, fmt.Errorf("additional tag %q: %w (%w)", tag, ErrInvalidOptions, err)
			}
			refs = append(refs, ref)
		}
	case "oci":
		dir, _, _ := strings.Cut(dest.StringWithinTransport(), ":")
		for _, tag := range tags {
			ref, err := layout.NewReference(dir, tag)
			if err != nil {
				return nil, fmt.Errorf("additional tag %q: %w (%w)", tag, ErrInvalidOptions, err)
			}
			refs = append(refs, ref)
		}
	default:
		return nil, fmt.Errorf("additional tags %v for a %s: destination, which holds one name: %w", tags, dest.Transport().Name(), ErrInvalidOptions)
	}
	return refs, nil
}

// addTags gives the image written to dest its additional tags: names in the
// store for containers-storage, else copies of dest to each of refs (which
// find every blob there already, and sign anew for their own names).
func (b *Builder) addTags(ctx context.Context, policy *signature.PolicyContext, dest types.ImageReference, imageID string, refs []types.ImageReference, opts CommitOptions) error {
	if dest.Transport().Name() == is.Transport.Name() {
		if len(opts.AdditionalTags) == 0 {
			return nil
		}
		if err := b.store.AddNames(imageID, opts.AdditionalTags); err != nil {
			return fmt.Errorf("tagging image %s as %v: %w", imageID, opts.AdditionalTags, err)
		}
		return nil
	}
	copyOpts := opts.copyOptions()
	copyOpts.SourceCtx = opts.SystemContext
	for _, ref := range refs {
		if _, err := copy.Image(ctx, policy, ref, dest, copyOpts); err != nil {
			return fmt.Errorf("tagging %s as %s: %w", transports.ImageName(dest), transports.ImageName(ref), err)
		}
	}
	return nil
}

// writeIIDFile writes "sha256:" and the image ID to path.
func writeIIDFile(path string, res CommitResult) error {
	id := res.ImageID
	if id == "" {
		id = res.ConfigDigest.Encoded()
	}
	if err := os.WriteFile(path, []byte("sha256:"+id), 0o644); err != nil {
		return fmt.Errorf("writing the image ID to %s: %w", path, err)
	}
	return nil
}
