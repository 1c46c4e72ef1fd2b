package bricklayer

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/bricklayer/bricklayer/internal/layerexport"
	"github.com/bricklayer/bricklayer/internal/tarnorm"
	digest "github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	"go.podman.io/storage"
	"go.podman.io/storage/pkg/archive"
)

// This file writes a commit's new layers straight into the builder's own
// store when the destination is that store. copy.Image's containers-storage
// destination names each layer by its chain ID: the diffID's hex for a
// bottom layer, sha256(parentID + "+" + diffID hex) above it, and reuses a
// layer that already has that ID. A layer put there first under that ID is
// therefore written once, straight from the diff stream, instead of being
// exported to a file and copied in again.

// chainLayerID is the ID the containers-storage destination gives a layer
// with diffID on top of parent ("" for none).
func chainLayerID(parent string, diffID digest.Digest) string {
	if parent == "" {
		return diffID.Encoded()
	}
	return digest.Canonical.FromString(parent + "+" + diffID.Encoded()).Encoded()
}

// storeChainTop checks that the base image's stored layers carry the chain
// IDs the destination will compute for them, and returns the top one's ID.
// When they do not (a base stored by another tool), the destination would
// copy them anew, so writing the new layers into the store would not help.
func storeChainTop(chain []*storage.Layer, base []baseLayer) (string, bool) {
	parent := ""
	for i, l := range chain {
		if l.ID != chainLayerID(parent, base[i].DiffID) {
			return "", false
		}
		parent = l.ID
	}
	return parent, true
}

// exportIntoStore writes each layer's normalised diff into the store as a
// new layer. The layer's ID depends on its diffID, known only after reading
// the diff, so each layer is read twice: once to digest it, once into the
// store. A layer that exists already under that ID is not written again.
func (s *imageSource) exportIntoStore(ctx context.Context, parent string, layers []*storage.Layer) ([]exportedLayer, error) {
	var out []exportedLayer
	for _, l := range layers {
		norm := s.ref.opts.tarNormalization()
		d, err := s.digestLayer(ctx, l, norm)
		if err != nil {
			return nil, err
		}
		id := chainLayerID(parent, d.DiffID)
		if existing, err := s.store.Layer(id); err == nil && existing.UncompressedDigest == d.DiffID {
			logrus.Debugf("layer %s: already in the store as %s", l.ID, id)
		} else if err := s.putLayer(ctx, l, id, parent, d, norm); err != nil {
			return nil, err
		}
		out = append(out, exportedLayer{Digests: d, storeLayer: id})
		parent = id
	}
	return out, nil
}

// unlockedDiff returns layer l's diff against its parent, made from the
// mounted layer without holding the store's layer lock while it is read.
// store.Diff holds that lock until its stream is closed, and PutLayer needs
// it, so a store.Diff stream cannot feed a PutLayer of the same store.
func (s *imageSource) unlockedDiff(l *storage.Layer) (_ io.ReadCloser, err error) {
	var changes []archive.Change
	if l.Parent != "" {
		if changes, err = s.store.Changes(l.Parent, l.ID); err != nil {
			return nil, fmt.Errorf("listing the changes of layer %s: %w", l.ID, err)
		}
	}
	mp, err := s.store.Mount(l.ID, l.MountLabel)
	if err != nil {
		return nil, fmt.Errorf("mounting layer %s: %w", l.ID, err)
	}
	unmount := func() {
		if _, err := s.store.Unmount(l.ID, false); err != nil {
			logrus.Warnf("unmounting layer %s: %v", l.ID, err)
		}
	}
	var rc io.ReadCloser
	if l.Parent == "" {
		rc, err = archive.TarWithOptions(mp, &archive.TarOptions{Compression: archive.Uncompressed, UIDMaps: l.UIDMap, GIDMaps: l.GIDMap})
	} else {
		rc, err = archive.ExportChanges(mp, changes, l.UIDMap, l.GIDMap)
	}
	if err != nil {
		unmount()
		return nil, fmt.Errorf("reading layer %s: %w", l.ID, err)
	}
	return &closeFunc{ReadCloser: rc, after: unmount}, nil
}

// closeFunc runs after once its ReadCloser is closed.
type closeFunc struct {
	io.ReadCloser
	after func()
}

func (c *closeFunc) Close() error {
	err := c.ReadCloser.Close()
	if c.after != nil {
		c.after()
		c.after = nil
	}
	return err
}

// digestLayer reads a layer's diff once to learn its diffID and size.
func (s *imageSource) digestLayer(ctx context.Context, l *storage.Layer, norm *tarnorm.Options) (layerexport.Digests, error) {
	diff, err := s.unlockedDiff(l)
	if err != nil {
		return layerexport.Digests{}, err
	}
	exportStarted(l.ID)
	d, err := layerexport.Stream(ctx, io.Discard, diff, layerexport.Options{Algorithm: layerexport.None, Normalize: norm})
	if cerr := diff.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return layerexport.Digests{}, fmt.Errorf("digesting layer %s: %w", l.ID, err)
	}
	return d, nil
}

// putLayer writes layer l's diff into the store as layer id on parent, and
// checks that the store saw the diffID the first read computed.
func (s *imageSource) putLayer(ctx context.Context, l *storage.Layer, id, parent string, d layerexport.Digests, norm *tarnorm.Options) error {
	diff, err := s.unlockedDiff(l)
	if err != nil {
		return err
	}
	defer diff.Close()
	stream := layerexport.Reader(ctx, diff, norm)
	defer stream.Close()
	created, _, err := s.store.PutLayer(id, parent, nil, "", false, nil, stream)
	if err != nil && ctx.Err() != nil {
		// The stream was cut because ctx ended: storage reports only the
		// short read that followed.
		return fmt.Errorf("writing layer %s into the store as %s: %w", l.ID, id, errors.Join(ctx.Err(), err))
	}
	if err != nil {
		if errors.Is(err, storage.ErrDuplicateID) {
			// Another commit of the same content (this builder's, or another
			// process's) wrote it first.
			if existing, lerr := s.store.Layer(id); lerr == nil && existing.UncompressedDigest == d.DiffID {
				logrus.Debugf("layer %s: written into the store as %s by another commit meanwhile", l.ID, id)
				return nil
			}
			return fmt.Errorf("writing layer %s into the store as %s: another layer has that ID: %w", l.ID, id, err)
		}
		return fmt.Errorf("writing layer %s into the store as %s: %w", l.ID, id, err)
	}
	s.createdLayers = append(s.createdLayers, created.ID)
	if created.UncompressedDigest != d.DiffID {
		return fmt.Errorf("layer %s changed while it was exported: diffID %s, then %s", l.ID, d.DiffID, created.UncompressedDigest)
	}
	logrus.Debugf("wrote layer %s into the store as %s (diffID %s)", l.ID, id, d.DiffID)
	return nil
}

// removeCreatedLayers deletes the layers this source wrote into the store
// that no image or container uses, newest first. It is called when the
// commit fails.
func (s *imageSource) removeCreatedLayers() {
	for i := len(s.createdLayers) - 1; i >= 0; i-- {
		id := s.createdLayers[i]
		if imgs, err := s.store.ImagesByTopLayer(id); err == nil && len(imgs) > 0 {
			continue
		}
		if err := s.store.DeleteLayer(id); err != nil {
			logrus.Warnf("removing layer %s after a failed commit: %v", id, err)
		}
	}
	s.createdLayers = nil
}
