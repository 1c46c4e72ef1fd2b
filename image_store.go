package bricklayer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bricklayer/bricklayer/internal/layerexport"
	"github.com/bricklayer/bricklayer/internal/tarnorm"
	"github.com/bricklayer/bricklayer/internal/treetar"
	digest "github.com/opencontainers/go-digest"
	"github.com/sirupsen/logrus"
	"go.podman.io/storage"
	"go.podman.io/storage/pkg/archive"
	"go.podman.io/storage/pkg/idtools"
)

// This file writes a commit's new layers straight into the builder's own
// store when the destination is that store. copy.Image's containers-storage
// destination looks each layer up by its chain ID: the diffID's hex for a
// bottom layer, sha256(parentID + "+" + diffID hex) above it, where parentID
// is the parent's real layer ID, and reuses the layer it finds. The store's
// lookups resolve layer names as well as IDs.
//
// A layer's chain ID depends on its diffID, known only once the diff has
// been read, so each new layer is written in one pass under an ID the store
// picks, and then given its chain ID as a name. The layer is read once and
// written once, straight from the diff stream, instead of being exported to
// a file and copied in again.

// chainLayerID is the ID the containers-storage destination gives a layer
// with diffID on top of the layer whose ID is parent ("" for none), and
// looks the layer up by.
func chainLayerID(parent string, diffID digest.Digest) string {
	if parent == "" {
		return diffID.Encoded()
	}
	return digest.Canonical.FromString(parent + "+" + diffID.Encoded()).Encoded()
}

// storeChainTop checks that the base image's stored layers can be found
// under the chain IDs the destination will compute for them, as their IDs
// (layers that containers/image wrote) or their names (layers that a commit
// of ours wrote), and returns the top one's ID. When they cannot (a base
// stored by another tool under other IDs), the destination would copy them
// anew, so writing the new layers into the store would not help.
func storeChainTop(chain []*storage.Layer, base []baseLayer) (string, bool) {
	parent := ""
	for i, l := range chain {
		want := chainLayerID(parent, base[i].DiffID)
		if l.ID != want && !slices.Contains(l.Names, want) {
			return "", false
		}
		parent = l.ID
	}
	return parent, true
}

// exportIntoStore writes each layer's normalised diff into the store as a
// new layer on parent, and returns them with their store IDs.
//
// A container committed again may not have changed since; the one pass
// would then write the whole layer only to find it in the store already.
// So when the container's directory records an earlier commit of the layer
// on the same parent whose result the store still holds, the diff is read
// once first to learn its diffID, and written only if that differs. ctrDir
// is the container's directory; "" records nothing.
func (s *imageSource) exportIntoStore(ctx context.Context, ctrDir, parent string, layers []*storage.Layer) ([]exportedLayer, error) {
	rec := readStoreRecord(ctrDir)
	var out []exportedLayer
	for _, l := range layers {
		norm := s.normalization(s.store.GraphDriverName() == "overlay")
		var id string
		var d layerexport.Digests
		var err error
		if rec.holds(s.store, l.ID, parent) {
			var exported func(layerexport.Digests)
			if d, exported, err = s.digestLayer(ctx, l, norm); err != nil {
				return nil, err
			}
			chain := chainLayerID(parent, d.DiffID)
			if existing, lerr := s.store.Layer(chain); lerr == nil && existing.UncompressedDigest == d.DiffID {
				logrus.Debugf("layer %s: unchanged since it was committed as %s", l.ID, existing.ID)
				id = existing.ID
				exported(d)
			}
		}
		if id == "" {
			if id, d, err = s.putLayer(ctx, l, parent, norm); err != nil {
				return nil, err
			}
		}
		rec.set(storeRecordEntry{Source: l.ID, Parent: parent, Layer: id, DiffID: d.DiffID})
		out = append(out, exportedLayer{Digests: d, storeLayer: id})
		parent = id
	}
	rec.write(ctrDir)
	return out, nil
}

// unlockedDiff returns layer l's diff against its parent, made without
// holding the store's layer lock while it is read. store.Diff holds that
// lock until its stream is closed, and PutLayer needs it, so a store.Diff
// stream cannot feed a PutLayer of the same store. The stream is written
// by treetar, about two and a half times as fast as the store's own tar
// writer: a layer of an overlay driver that makes its diffs natively as
// its upper directory (upperDiff), with or without a parent, as the driver
// would; any other layer without a parent as its mounted tree, and with one
// as its changes; normalised as norm says as it is written (nil: as the
// files are), so that it needs no second pass.
func (s *imageSource) unlockedDiff(ctx context.Context, l *storage.Layer, norm *tarnorm.Options) (_ io.ReadCloser, err error) {
	if s.readsUpper {
		opts := treetar.Options{IDMappings: idtools.NewIDMappingsFromMaps(l.UIDMap, l.GIDMap), Normalize: norm}
		rc, err := s.upperDiff(ctx, l, opts)
		if err != nil {
			return nil, fmt.Errorf("reading layer %s: %w", l.ID, err)
		}
		return rc, nil
	}
	return s.mountedDiff(ctx, l, l.Parent, norm)
}

// mountedDiff returns, from layer top's mounted tree, how it differs from
// the tree of layer fromID (all of it when fromID is ""), which need not be
// its parent, normalised as norm says.
func (s *imageSource) mountedDiff(ctx context.Context, top *storage.Layer, fromID string, norm *tarnorm.Options) (io.ReadCloser, error) {
	mp, unmount, err := s.mountLayer(top)
	if err != nil {
		return nil, err
	}
	opts := treetar.Options{IDMappings: idtools.NewIDMappingsFromMaps(top.UIDMap, top.GIDMap), Normalize: norm}
	if fromID == "" {
		return &closeFunc{ReadCloser: treetar.Reader(ctx, mp, opts), after: unmount}, nil
	}
	changes, err := s.layerChanges(ctx, top, mp, fromID)
	if err != nil {
		unmount()
		return nil, fmt.Errorf("reading layer %s: %w", top.ID, err)
	}
	return &closeFunc{ReadCloser: treetar.ChangesReader(ctx, mp, changes, opts), after: unmount}, nil
}

// testHookUpperDiff, when set by a test, is called with the ID of each
// layer whose upper directory is read.
var testHookUpperDiff func(layerID string)

// upperDiff returns overlay layer l's diff against its parent (its whole
// tree when it has none) as the driver makes it natively: its upper
// directory, whose whiteouts and opaque directories treetar converts,
// looking into the lower layers' directories. The layer need not be
// mounted.
func (s *imageSource) upperDiff(ctx context.Context, l *storage.Layer, opts treetar.Options) (io.ReadCloser, error) {
	if testHookUpperDiff != nil {
		testHookUpperDiff(l.ID)
	}
	driver, err := s.store.GraphDriver()
	if err != nil {
		return nil, err
	}
	meta, err := driver.Metadata(l.ID)
	if err != nil {
		return nil, err
	}
	upper := meta["UpperDir"]
	if upper == "" {
		return nil, fmt.Errorf("the overlay driver names no upper directory")
	}
	var lowers []string
	if v := meta["LowerDir"]; v != "" {
		lowers = strings.Split(v, ":")
	}
	dirs := append([]string{upper}, lowers...)
	for i, dir := range dirs {
		// A layer of an additional layer store is a link to its
		// directory there, as the driver follows it.
		if target, err := os.Readlink(dir); err == nil && filepath.IsAbs(target) {
			dirs[i] = target
		}
	}
	opts.Overlay = &treetar.Overlay{Lowers: dirs[1:], OpaqueXattr: archive.GetOverlayXattrName("opaque")}
	return treetar.Reader(ctx, dirs[0], opts), nil
}

// layerChanges lists how layer top, mounted at mp, differs from layer
// fromID: when the driver would compare the two trees (vfs, and overlay
// when it does not make its diffs natively), treetar compares them
// (comparedChanges), with the ctime check; else the driver's list is taken
// (treeChanges).
func (s *imageSource) layerChanges(ctx context.Context, top *storage.Layer, mp, fromID string) ([]archive.Change, error) {
	if s.comparesTrees {
		return s.comparedChanges(ctx, top, mp, fromID)
	}
	return s.treeChanges(top, mp, fromID)
}

// comparedChanges lists how the tree of layer top, mounted at mp, differs
// from that of layer fromID, as the driver's own comparison would find it
// (see treetar.Changes), in one walk of the two trees through file
// descriptors, which also makes the ctime check when it applies to top.
func (s *imageSource) comparedChanges(ctx context.Context, top *storage.Layer, mp, fromID string) ([]archive.Change, error) {
	from, err := s.store.Layer(fromID)
	if err != nil {
		return nil, fmt.Errorf("listing the changes of layer %s: %w", top.ID, err)
	}
	fromMp, unmount, err := s.mountLayer(from)
	if err != nil {
		return nil, fmt.Errorf("listing the changes of layer %s: %w", top.ID, err)
	}
	defer unmount()
	changes, err := treetar.Changes(ctx, mp, fromMp, treetar.ChangesOptions{
		NewIDs:       idtools.NewIDMappingsFromMaps(top.UIDMap, top.GIDMap),
		OldIDs:       idtools.NewIDMappingsFromMaps(from.UIDMap, from.GIDMap),
		ChangedSince: s.sweep.changedSince(top),
	})
	if err != nil {
		return nil, fmt.Errorf("listing the changes of layer %s against layer %s: %w", top.ID, from.ID, err)
	}
	return changes, nil
}

// treeChanges lists how layer top, mounted at mp, differs from layer
// fromID, as the driver finds it. The driver's own list is taken when it
// can make one. The overlay driver's fails where a directory replaces a
// file of a layer below (the version of containers/storage we build with
// takes the ENOTDIR of looking under that file for an error); then layer
// fromID is mounted too and the two trees compared, as drivers without a
// list of their own do.
func (s *imageSource) treeChanges(top *storage.Layer, mp, fromID string) (_ []archive.Change, err error) {
	changes, err := s.store.Changes(fromID, top.ID)
	if err == nil {
		return changes, nil
	}
	logrus.Debugf("listing the changes of layer %s against layer %s: %v; comparing the two trees instead", top.ID, fromID, err)
	from, ferr := s.store.Layer(fromID)
	if ferr != nil {
		return nil, fmt.Errorf("listing the changes of layer %s against layer %s: %w", top.ID, fromID, errors.Join(err, ferr))
	}
	fromMp, ferr := s.store.Mount(from.ID, from.MountLabel)
	if ferr != nil {
		return nil, fmt.Errorf("listing the changes of layer %s against layer %s: %w", top.ID, fromID, errors.Join(err, ferr))
	}
	defer func() {
		if _, uerr := s.store.Unmount(from.ID, false); uerr != nil {
			logrus.Warnf("unmounting layer %s: %v", from.ID, uerr)
		}
	}()
	changes, ferr = archive.ChangesDirs(mp, idtools.NewIDMappingsFromMaps(top.UIDMap, top.GIDMap), fromMp, idtools.NewIDMappingsFromMaps(from.UIDMap, from.GIDMap))
	if ferr != nil {
		return nil, fmt.Errorf("listing the changes of layer %s against layer %s: %w", top.ID, fromID, errors.Join(err, ferr))
	}
	return changes, nil
}

// checkStillThere fails if layer l, whose diff was read without the
// store's lock (unlockedDiff), is gone from the store. A container deleted
// meanwhile (by another process) has its layer's directory moved away and
// its record removed in one locked step, and the walk skips the files it
// can no longer find; so if the record is still there, the walk saw the
// whole layer.
func (s *imageSource) checkStillThere(l *storage.Layer) error {
	if _, err := s.store.Layer(l.ID); err != nil {
		return fmt.Errorf("layer %s was removed while it was read: %w", l.ID, err)
	}
	return nil
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

// digestLayer reads a layer's normalised diff once to learn its digests,
// reporting its reads to ExportProgress, and returns the function that
// reports the layer done, for when it need not be written.
func (s *imageSource) digestLayer(ctx context.Context, l *storage.Layer, norm *tarnorm.Options) (layerexport.Digests, func(layerexport.Digests), error) {
	diff, err := s.unlockedDiff(ctx, l, norm)
	if err != nil {
		return layerexport.Digests{}, nil, err
	}
	src, exported := s.trackProgress(l.ID, diff)
	exportStarted(l.ID)
	d, err := layerexport.Stream(ctx, io.Discard, src, layerexport.Options{Algorithm: layerexport.None})
	if cerr := diff.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return layerexport.Digests{}, nil, fmt.Errorf("digesting layer %s: %w", l.ID, err)
	}
	return d, exported, nil
}

// testHookPutLayer, when set by a test, is called as each layer is about to
// be written into the store.
var testHookPutLayer func(source string)

// putLayer writes layer l's normalised diff into the store on parent in one
// pass, names the new layer by its chain ID, and returns its ID and digests.
// The store computes the digests as it reads the stream. When a layer with
// that chain ID and diffID exists already (the same content committed
// before), the new one is deleted and the existing one's ID returned.
func (s *imageSource) putLayer(ctx context.Context, l *storage.Layer, parent string, norm *tarnorm.Options) (string, layerexport.Digests, error) {
	diff, err := s.unlockedDiff(ctx, l, norm)
	if err != nil {
		return "", layerexport.Digests{}, err
	}
	defer diff.Close()
	src, exported := s.trackProgress(l.ID, diff)
	exportStarted(l.ID)
	stream := layerexport.Reader(ctx, src, nil)
	defer stream.Close()
	if testHookPutLayer != nil {
		testHookPutLayer(l.ID)
	}
	created, _, err := s.store.PutLayer("", parent, nil, "", false, nil, stream)
	if err != nil {
		// The stream may have been cut by its own error (an unreadable
		// name) or by ctx ending: storage reports only the short read that
		// followed.
		stream.Close()
		if serr := stream.Err(); serr != nil {
			err = withCause(err, serr)
		}
	}
	if err != nil {
		return "", layerexport.Digests{}, fmt.Errorf("writing the diff of layer %s into the store: %w", l.ID, err)
	}
	s.createdLayers = append(s.createdLayers, created.ID)
	if err := s.checkStillThere(l); err != nil {
		s.dropCreatedLayer(created.ID)
		return "", layerexport.Digests{}, fmt.Errorf("writing layer %s into the store: %w", l.ID, err)
	}
	if created.UncompressedDigest == "" {
		return "", layerexport.Digests{}, fmt.Errorf("writing layer %s into the store as %s: the store computed no diffID", l.ID, created.ID)
	}
	d := layerexport.Digests{
		DiffID:           created.UncompressedDigest,
		UncompressedSize: created.UncompressedSize,
		Digest:           created.UncompressedDigest,
		Size:             created.UncompressedSize,
	}
	stream.Close() // the copy has ended: its count of the bytes read is final
	exported(d)

	name := chainLayerID(parent, d.DiffID)
	if existing, err := s.store.Layer(name); err == nil && existing.ID != created.ID {
		if existing.UncompressedDigest != d.DiffID {
			return "", layerexport.Digests{}, fmt.Errorf("writing layer %s into the store: layer %s has its chain ID %s, with diffID %s, not %s",
				l.ID, existing.ID, name, existing.UncompressedDigest, d.DiffID)
		}
		logrus.Debugf("layer %s: already in the store as %s", l.ID, existing.ID)
		s.dropCreatedLayer(created.ID)
		return existing.ID, d, nil
	}
	if err := s.store.AddNames(created.ID, []string{name}); err != nil {
		return "", layerexport.Digests{}, fmt.Errorf("naming layer %s (written from layer %s) %s: %w", created.ID, l.ID, name, err)
	}
	logrus.Debugf("wrote layer %s into the store as %s, named %s (diffID %s)", l.ID, created.ID, name, d.DiffID)
	return created.ID, d, nil
}

// withCause returns err wrapping cause as well: joined with it, or, when
// err's message already tells cause's (the store passes on a read error as
// it got it), with that message alone.
func withCause(err, cause error) error {
	if strings.Contains(err.Error(), cause.Error()) {
		return causedError{err: err, cause: cause}
	}
	return errors.Join(cause, err)
}

type causedError struct{ err, cause error }

func (e causedError) Error() string { return e.err.Error() }

func (e causedError) Unwrap() []error { return []error{e.err, e.cause} }

// removeCreatedLayers deletes the layers this source wrote into the store
// that no image, container or other layer uses, newest first. It is called
// when the commit fails, and after it succeeds, when it removes a layer only
// if a concurrent commit of the same content took its chain ID meanwhile, so
// that the destination used that commit's layer instead.
func (s *imageSource) removeCreatedLayers() {
	for i := len(s.createdLayers) - 1; i >= 0; i-- {
		s.dropCreatedLayer(s.createdLayers[i])
	}
}

// dropCreatedLayer deletes layer id, which this source wrote, unless it is
// in use, and forgets it.
func (s *imageSource) dropCreatedLayer(id string) {
	s.createdLayers = slices.DeleteFunc(s.createdLayers, func(c string) bool { return c == id })
	err := s.store.DeleteLayer(id)
	switch {
	case err == nil:
		logrus.Debugf("removed layer %s, which this commit wrote and nothing uses", id)
	case errors.Is(err, storage.ErrLayerHasChildren), errors.Is(err, storage.ErrLayerUsedByImage), errors.Is(err, storage.ErrLayerUsedByContainer):
		// In use: by this commit's image, or by another commit's.
	default:
		logrus.Warnf("removing layer %s, which this commit wrote: %v", id, err)
	}
}
