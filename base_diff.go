package bricklayer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
	"github.com/sirupsen/logrus"
	tarsplit "github.com/vbatts/tar-split/tar/storage"
	"go.podman.io/storage"
	graphdriver "go.podman.io/storage/drivers"
	"go.podman.io/storage/pkg/archive"
	"go.podman.io/storage/pkg/lockfile"
)

// A base layer is exported as the store recorded it when the layer was
// written: its tar-split (every header and padding of the original tar,
// and for each file its name and size) with the files' contents read from
// the driver's directories. store.Diff does the same, but it holds the
// layer store's lock for writing until its stream is closed, because some
// of its other paths mount the layer (the overlay driver's merged
// directory). That lock serialises the base layers' exports, which
// --jobs means to run side by side, and keeps every other user of the
// store (podman ps, a concurrent build) waiting for as long as a layer
// takes to export. containers/storage itself notes that rebuilding from the
// tar-split with the driver's file getter needs only the read lock
// (layerStore.tarSplitWithoutMounting), which is what recordedDiff takes.
//
// The store checks each file's crc64 against the tar-split as it reads;
// recordedDiff does not. Every base layer's diff is hashed as it is
// exported and compared with the diffID the base image records
// (ErrLayerCorrupt), and copy.Image checks a blob it reads against its
// digest, so a damaged file fails the commit either way; the crc64 was a
// tenth of the CPU an uncompressed export of a 4-layer base took.

// testHookRecordedDiff, when set by a test, is called with the ID of each
// layer whose diff recordedDiff rebuilds.
var testHookRecordedDiff func(layerID string)

// baseDiff returns layer id's diff against its parent, uncompressed, as the
// store recorded it: rebuilt from its tar-split under the layer store's
// read lock (recordedDiff), or, where that cannot be done, from store.Diff.
// The lock is held until the stream is closed.
func (s *imageSource) baseDiff(id string) (io.ReadCloser, error) {
	rc, err := s.recordedDiff(id)
	if err == nil {
		return rc, nil
	}
	logrus.Debugf("layer %s: %v; reading it through the store", id, err)
	if rc, err = s.store.Diff("", id, &storage.DiffOptions{Compression: new(archive.Uncompressed)}); err != nil {
		return nil, fmt.Errorf("reading layer %s: %w", id, err)
	}
	return rc, nil
}

// errNoRecordedDiff says why recordedDiff leaves a layer to store.Diff.
var errNoRecordedDiff = errors.New("not rebuilt from its tar-split here")

// recordedDiff rebuilds layer id's diff from its tar-split in the store's
// own layer store and the driver's file getter, holding that layer store's
// lock file for reading. It fails, and the caller falls back on store.Diff,
// for a store with a separate image store, a layer of an additional layer
// store (an additional image store's has no tar-split in this store), a
// layer without a tar-split, and a driver without a file getter.
func (s *imageSource) recordedDiff(id string) (_ io.ReadCloser, err error) {
	if s.store.ImageStore() != "" {
		return nil, fmt.Errorf("the store has a separate image store: %w", errNoRecordedDiff)
	}
	driver, err := s.store.GraphDriver()
	if err != nil {
		return nil, err
	}
	getter, ok := driver.(graphdriver.DiffGetterDriver)
	if !ok {
		return nil, fmt.Errorf("driver %s has no file getter: %w", driver, errNoRecordedDiff)
	}
	if als, ok := driver.(graphdriver.AdditionalLayerStoreDriver); ok {
		if al, err := als.LookupAdditionalLayerByID(id); err == nil {
			al.Release()
			return nil, fmt.Errorf("a layer of an additional layer store: %w", errNoRecordedDiff)
		}
	}

	// The lock file containers/storage's layer store takes, the same
	// object within this process (lockfile keeps one per path).
	layerDir := filepath.Join(s.store.GraphRoot(), s.store.GraphDriverName()+"-layers")
	lock, err := lockfile.GetLockFile(filepath.Join(layerDir, "layers.lock"))
	if err != nil {
		return nil, err
	}
	lock.RLock()
	// What the stream's Close releases, in reverse order: the lock last.
	closers := []func() error{func() error { lock.Unlock(); return nil }}
	defer func() {
		if err != nil {
			closeAll(closers)
		}
	}()
	// A layer deleted before the lock was taken has no tar-split left.
	tsFile, err := os.Open(filepath.Join(layerDir, id+".tar-split.gz"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("no tar-split: %w", errNoRecordedDiff)
		}
		return nil, err
	}
	closers = append(closers, tsFile.Close)
	ts, err := gzip.NewReader(tsFile)
	if err != nil {
		return nil, fmt.Errorf("reading the tar-split of layer %s: %w", id, err)
	}
	closers = append(closers, ts.Close)
	files, err := getter.DiffGetter(id)
	if err != nil {
		return nil, fmt.Errorf("opening the files of layer %s: %w", id, err)
	}
	if files == nil {
		return nil, fmt.Errorf("driver %s has no file getter for it: %w", driver, errNoRecordedDiff)
	}
	closers = append(closers, files.Close)
	if testHookRecordedDiff != nil {
		testHookRecordedDiff(id)
	}
	return &recordedTar{layerID: id, entries: tarsplit.NewJSONUnpacker(ts), files: files, closers: closers}, nil
}

// recordedTar is a layer's tar stream rebuilt from its tar-split: each
// segment entry's bytes as recorded, each file entry's size in bytes from
// the file getter.
type recordedTar struct {
	layerID string
	entries tarsplit.Unpacker
	files   tarsplit.FileGetter
	closers []func() error // run in reverse order by Close

	cur     io.Reader // what is left of the current entry
	file    io.ReadCloser
	name    string // the current file's, for errors
	missing int64  // bytes the current file still owes
	err     error  // sticky
}

func (t *recordedTar) Read(p []byte) (int, error) {
	for t.err == nil {
		if t.cur != nil {
			n, err := t.cur.Read(p)
			if t.file != nil {
				t.missing -= int64(n)
			}
			if err == io.EOF {
				err = t.endEntry()
			}
			if err != nil {
				t.err = err
				if n == 0 {
					return 0, err
				}
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		t.err = t.nextEntry()
	}
	return 0, t.err
}

// nextEntry makes the next entry with bytes the current one, or returns
// io.EOF after the last.
func (t *recordedTar) nextEntry() error {
	e, err := t.entries.Next()
	if err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return fmt.Errorf("reading the tar-split of layer %s: %w", t.layerID, err)
	}
	switch e.Type {
	case tarsplit.SegmentType:
		t.cur = bytes.NewReader(e.Payload)
	case tarsplit.FileType:
		if e.Size == 0 {
			return nil
		}
		name := e.GetName()
		f, err := t.files.Get(name)
		if err != nil {
			return fmt.Errorf("reading %s in layer %s: %w", name, t.layerID, err)
		}
		t.file, t.name, t.missing = f, name, e.Size
		t.cur = io.LimitReader(f, e.Size)
	default:
		return fmt.Errorf("reading the tar-split of layer %s: unknown entry type %d", t.layerID, e.Type)
	}
	return nil
}

// endEntry closes the current entry, failing when its file was shorter
// than the tar-split records.
func (t *recordedTar) endEntry() error {
	t.cur = nil
	if t.file == nil {
		return nil
	}
	err := t.file.Close()
	t.file = nil
	if t.missing > 0 {
		return fmt.Errorf("reading %s in layer %s: %d bytes shorter than the store recorded: %w", t.name, t.layerID, t.missing, ErrLayerCorrupt)
	}
	if err != nil {
		return fmt.Errorf("reading %s in layer %s: %w", t.name, t.layerID, err)
	}
	return nil
}

// Close releases the files, the tar-split and the layer store's lock.
func (t *recordedTar) Close() error {
	var err error
	if t.file != nil {
		err = t.file.Close()
		t.file = nil
	}
	err = errors.Join(err, closeAll(t.closers))
	t.closers = nil
	return err
}

// closeAll calls each of closers, last first, and joins their errors.
func closeAll(closers []func() error) error {
	var errs []error
	for i := len(closers) - 1; i >= 0; i-- {
		errs = append(errs, closers[i]())
	}
	return errors.Join(errs...)
}
