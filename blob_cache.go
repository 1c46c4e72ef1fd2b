package bricklayer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bricklayer/bricklayer/internal/layerexport"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
)

// This file keeps the compressed blobs of base layers in a directory of the
// user's (CommitOptions.BlobCacheDir), so that the next commit on the same
// base takes them from there instead of compressing the layers again. A
// base image stored uncompressed, as buildah and podman store what they
// pull and build, has no compressed blob of its own: without the cache,
// every commit to a new OCI layout, an archive or a registry that lacks it
// compresses the whole base image again, which is most of what a commit on
// a large base costs.
//
// An entry is found by the layer's diffID and the exporter's identity
// (layerexport.Options.Identity: algorithm, level, compressor versions), so
// a blob taken from the cache is the one the export would have made, and
// the image's digest is the same with the cache as without it. A blob is
// checked before it is taken, as a layout's own blob is (holdsLayer), so a
// damaged or altered entry costs an export, never a broken image.
//
// The directory holds:
//
//	blobs/sha256/<hex>     blobs, named by their digest, mode 0644
//	layers/<key>.json      one entry per diffID and identity (cacheEntry)
//
// Files are written under a temporary name and renamed, so concurrent
// commits sharing the directory see whole files only. Blobs are hard-linked
// in and out where the filesystem allows, else copied. Nothing is ever
// removed but entries that fail their check and the temporary files of
// killed commits: the directory is the user's to empty.

// cacheEntry is what layers/<key>.json records.
type cacheEntry struct {
	DiffID   digest.Digest `json:"diffID"`
	Exporter string        `json:"exporter"`
	Digest   digest.Digest `json:"digest"`
	Size     int64         `json:"size"`
}

// blobCache is a cache directory as one commit uses it.
type blobCache struct {
	dir      string
	exporter string // the identity of the commit's exporter
}

// openBlobCache prepares dir to hold blobs exported as opts say.
func openBlobCache(dir string, opts layerexport.Options) (*blobCache, error) {
	for _, sub := range []string{filepath.Join("blobs", "sha256"), "layers"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("preparing blob cache %s: %w", dir, err)
		}
		removeStalePartials(filepath.Join(dir, sub))
	}
	return &blobCache{dir: dir, exporter: opts.Identity()}, nil
}

// stalePartialAge is how old a temporary file of the cache must be to be
// taken for one that a killed commit left, not one being written.
const stalePartialAge = time.Hour

// cachedTempPattern names a cached blob being placed in a destination's
// blob directory, until it is checked (as os.CreateTemp and filepath.Glob
// take it).
const cachedTempPattern = ".cached-*.partial"

// removeStalePartials removes the temporary files in dir that commits
// killed before they could remove them left there: every name the cache
// writes under a temporary name starts with a dot.
func removeStalePartials(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, ".") {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > stalePartialAge {
			logrus.Debugf("blob cache: removing %s, left by a commit that did not end", filepath.Join(dir, name))
			os.Remove(filepath.Join(dir, name))
		}
	}
}

func (c *blobCache) entryPath(diffID digest.Digest) string {
	key := sha256.Sum256([]byte(diffID.String() + "\n" + c.exporter))
	return filepath.Join(c.dir, "layers", hex.EncodeToString(key[:])+".json")
}

func (c *blobCache) blobPath(d digest.Digest) string {
	return filepath.Join(c.dir, "blobs", "sha256", d.Encoded())
}

// lookup returns the cached blob recorded for diffID, if there is one of
// the size it records.
func (c *blobCache) lookup(diffID digest.Digest) (layoutBlob, bool) {
	data, err := os.ReadFile(c.entryPath(diffID))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			logrus.Debugf("blob cache %s: reading the entry of layer %s: %v", c.dir, diffID, err)
		}
		return layoutBlob{}, false
	}
	var e cacheEntry
	if err := json.Unmarshal(data, &e); err != nil || e.DiffID != diffID || e.Exporter != c.exporter || !inBlobDir(e.Digest) {
		logrus.Debugf("blob cache %s: the entry of layer %s is not one of ours (%v), not used", c.dir, diffID, err)
		return layoutBlob{}, false
	}
	path := c.blobPath(e.Digest)
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() || fi.Size() != e.Size {
		logrus.Debugf("blob cache %s: blob %s of layer %s is missing or not %d bytes, not used", c.dir, e.Digest, diffID, e.Size)
		return layoutBlob{}, false
	}
	return layoutBlob{Descriptor: v1.Descriptor{Digest: e.Digest, Size: e.Size}, path: path}, true
}

// take places the cached blob b into dir, under its digest, once it has
// checked that b holds the layer with diffID (see holdsLayer); publish
// syncs it to disk first, as a destination's blob. It returns the blob's
// path in dir, or false when b does not hold the layer or cannot be placed.
// An entry whose blob fails the check is removed.
func (c *blobCache) take(ctx context.Context, b layoutBlob, dir string, comp Compression, diffID digest.Digest, paired, publish bool) (string, bool) {
	tmp, err := placeFile(b.path, dir, cachedTempPattern)
	if err == nil {
		err = c.check(ctx, layoutBlob{Descriptor: b.Descriptor, path: tmp}, comp, diffID, paired)
	}
	if err == nil && publish {
		err = syncFile(tmp)
	}
	path := filepath.Join(dir, b.Digest.Encoded())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if tmp != "" {
		// Gone after a rename, unless path was another link of the same
		// file: rename then leaves both.
		os.Remove(tmp)
	}
	if err != nil {
		logrus.Debugf("blob cache %s: taking blob %s of layer %s: %v", c.dir, b.Digest, diffID, err)
		return "", false
	}
	return path, true
}

// check says why b, a cached blob placed for the commit, cannot be taken for
// the layer with diffID, or nil if it can. An entry whose blob does not
// hold the layer is removed.
func (c *blobCache) check(ctx context.Context, b layoutBlob, comp Compression, diffID digest.Digest, paired bool) error {
	ok, err := holdsLayer(ctx, b, comp, diffID, paired)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if ok && err == nil {
		return nil
	}
	// A blob that does not decompress does not hold the layer either.
	why := "its digest or its diffID differs"
	if err != nil {
		why = err.Error()
	}
	logrus.Warnf("blob cache %s: blob %s does not hold layer %s as its entry says (%s); removed, the layer is exported again", c.dir, b.Digest, diffID, why)
	os.Remove(c.entryPath(diffID))
	os.Remove(c.blobPath(b.Digest))
	return fmt.Errorf("blob %s does not hold layer %s", b.Digest, diffID)
}

// add records the blob at path, just exported for the layer of d.DiffID.
// A failure is a warning: the commit goes on without the cache.
func (c *blobCache) add(path string, d layerexport.Digests) {
	if err := c.addBlob(path, d); err != nil {
		logrus.Warnf("blob cache %s: keeping blob %s of layer %s: %v", c.dir, d.Digest, d.DiffID, err)
	}
}

func (c *blobCache) addBlob(path string, d layerexport.Digests) error {
	dst := c.blobPath(d.Digest)
	if !fileHasDigest(dst, d.Digest, d.Size) {
		tmp, err := placeFile(path, filepath.Dir(dst), ".add-*.partial")
		if err != nil {
			return err
		}
		if err := os.Rename(tmp, dst); err != nil {
			os.Remove(tmp)
			return err
		}
	}
	return writeJSONAtomic(c.entryPath(d.DiffID), cacheEntry{DiffID: d.DiffID, Exporter: c.exporter, Digest: d.Digest, Size: d.Size})
}

// fileHasDigest says whether path is a regular file of size bytes whose
// digest is d.
func fileHasDigest(path string, d digest.Digest, size int64) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() != size {
		return false
	}
	v := d.Verifier()
	_, err = io.Copy(v, f)
	return err == nil && v.Verified()
}

// placeFile puts the bytes of src into a new file in dir, named by the
// pattern as os.CreateTemp names one, readable by all: a hard link to src
// where dir's filesystem allows one, else a copy. It returns the new
// file's path.
func placeFile(src, dir, pattern string) (_ string, err error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// The temporary file reserves the name; a link takes its place.
	if err := os.Remove(tmp); err != nil {
		return "", err
	}
	if err := os.Link(src, tmp); err == nil {
		f.Close()
		return tmp, os.Chmod(tmp, 0o644)
	}
	f.Close()
	if f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
		return "", err
	}
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	if _, err := io.Copy(f, in); err != nil {
		return "", err
	}
	return tmp, f.Close()
}

// syncFile syncs the file at path to disk.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// takeCachedBlob returns the base layer of job from the commit's blob
// cache, placed in dir, or false when the cache has no blob that holds it.
func (s *imageSource) takeCachedBlob(ctx context.Context, dir string, job exportJob) (exportedLayer, bool) {
	if s.layerCache == nil || !job.base {
		return exportedLayer{}, false
	}
	b, ok := s.layerCache.lookup(job.wantDiffID)
	if !ok {
		return exportedLayer{}, false
	}
	paired := s.blobCache.UncompressedDigest(b.Digest) == job.wantDiffID
	path, ok := s.layerCache.take(ctx, b, dir, s.ref.opts.Compression, job.wantDiffID, paired, s.publish)
	if !ok {
		return exportedLayer{}, false
	}
	if !paired {
		s.blobCache.RecordDigestUncompressedPair(b.Digest, job.wantDiffID)
	}
	logrus.Debugf("base layer %s: taken from blob cache %s, blob %s (%d bytes), not exported again", job.layer.ID, s.layerCache.dir, b.Digest, b.Size)
	return exportedLayer{Digests: layerexport.Digests{DiffID: job.wantDiffID, UncompressedSize: job.layer.UncompressedSize, Digest: b.Digest, Size: b.Size}, path: path}, true
}
