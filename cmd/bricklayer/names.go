package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bricklayer/bricklayer"
	"go.podman.io/image/v5/docker/reference"
	is "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/transports"
	"go.podman.io/image/v5/transports/alltransports"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
)

// transportRef parses s as a containers/image reference when it starts with
// the name of a known transport ("oci:", "docker://", "containers-storage:",
// ...). ok is false when it does not: s is then a name in the store.
func transportRef(s string) (ref types.ImageReference, ok bool, err error) {
	prefix, _, found := strings.Cut(s, ":")
	if !found || transports.Get(prefix) == nil {
		return nil, false, nil
	}
	ref, err = alltransports.ParseImageName(s)
	if err != nil {
		return nil, true, usagef("reference %q: %v", s, err)
	}
	if localPathTransports[prefix] && strings.HasPrefix(ref.StringWithinTransport(), ":") {
		// "oci:" or "oci::tag" parse, as the current directory's parent's
		// empty name, and fail later with "mkdir : no such file".
		return nil, true, usagef("reference %q: no path", s)
	}
	return ref, true, nil
}

// localPathTransports are the transports whose references start with a
// path.
var localPathTransports = map[string]bool{"oci": true, "oci-archive": true, "dir": true, "docker-archive": true}

// localName normalises a name of a local image: a name without a registry
// is put under localhost/ (as podman and buildah do), and a name without a
// tag or digest gets :latest.
func localName(s string) (reference.Named, error) {
	if s == "" {
		return nil, usagef("empty image name")
	}
	full := s
	first, _, hasSlash := strings.Cut(s, "/")
	if !hasSlash || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		full = "localhost/" + s
	}
	named, err := reference.ParseNormalizedNamed(full)
	if err != nil {
		return nil, usagef("image name %q: %v", s, err)
	}
	return reference.TagNameOnly(named), nil
}

// destination parses a commit destination: a transport reference, or the
// name of a local image in the store. An empty dest is nil: an image
// without a name.
func destination(store storage.Store, dest string) (types.ImageReference, error) {
	if dest == "" {
		return nil, nil
	}
	if ref, ok, err := transportRef(dest); ok {
		return ref, err
	}
	named, err := localName(dest)
	if err != nil {
		return nil, err
	}
	ref, err := is.Transport.NewStoreReference(store, named, "")
	if err != nil {
		return nil, usagef("image name %q: %v", dest, err)
	}
	return ref, nil
}

// findImage looks an image up in the store by ID, ID prefix, full name, or
// short name (normalised as [localName] does, then as the
// containers-storage: transport does).
func findImage(store storage.Store, name string) (*storage.Image, error) {
	if img, err := store.Image(name); err == nil {
		return img, nil
	}
	if named, err := localName(name); err == nil {
		if img, err := store.Image(named.String()); err == nil {
			return img, nil
		}
	}
	if ref, err := is.Transport.ParseStoreReference(store, name); err == nil {
		if img, err := is.Transport.GetStoreImage(store, ref); err == nil {
			return img, nil
		}
	}
	return nil, fmt.Errorf("image %q: %w", name, bricklayer.ErrImageNotFound)
}

// openContainer opens a working container, with an error that names it.
func openContainer(store storage.Store, name string) (*bricklayer.Builder, error) {
	b, err := bricklayer.OpenBuilder(store, name)
	if errors.Is(err, bricklayer.ErrContainerNotFound) {
		return nil, fmt.Errorf("no container %q in the store %s", name, store.GraphRoot())
	}
	return b, err
}
