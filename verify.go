package bricklayer

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"

	"github.com/bricklayer/bricklayer/docker"
	"github.com/docker/distribution/registry/api/errcode"
	v2 "github.com/docker/distribution/registry/api/v2"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/transports"
	"go.podman.io/image/v5/types"
)

// VerifyReport is what [Verify] found. A report with no problems means every
// digest, size and diffID the image claims was recomputed and matched.
type VerifyReport struct {
	// Reference is the image verified, as transports.ImageName spells it.
	Reference string
	// ManifestDigest is the digest of the manifest (or index) as read, and
	// ManifestType its MIME type.
	ManifestDigest digest.Digest
	ManifestType   string
	// Images is how many images were checked: one, or one per instance of a
	// manifest list or index.
	Images int
	// Blobs is how many blobs (configs and layers) were read and recomputed.
	Blobs int
	// Problems lists each mismatch, in the order found.
	Problems []VerifyProblem
}

// OK is true when no problem was found.
func (r VerifyReport) OK() bool { return len(r.Problems) == 0 }

// VerifyProblem is one mismatch between what an image claims and what its
// bytes are.
type VerifyProblem struct {
	// Instance is the digest of the list instance the problem is in, "" for
	// a single image (or the list itself).
	Instance digest.Digest
	// Object names what is wrong: "manifest", "config", "layer 2" (counted
	// from 0, bottom first) or "image" for counts across objects.
	Object string
	// Digest is the object's digest as its referrer names it, "" when
	// unknown.
	Digest digest.Digest
	// Check says what was compared: "presence", "digest", "size",
	// "reported size", "diffID", "compression", "media type",
	// "decompression", "parse", "diff_ids count" or "history count".
	Check string
	// Want is what the referrer claims, Got what was found.
	Want, Got string
}

// String describes the problem in one line.
func (p VerifyProblem) String() string {
	s := p.Object
	if p.Instance != "" {
		s = "instance " + p.Instance.String() + ": " + s
	}
	if p.Digest != "" {
		s += " (" + p.Digest.String() + ")"
	}
	return fmt.Sprintf("%s: %s: want %s, got %s", s, p.Check, p.Want, p.Got)
}

// Verify reads the image ref names through containers/image and recomputes
// what its manifest and config claim: the manifest's digest when the
// reference knows it (a digested reference, an oci: layout's index), every
// blob's digest and size, each layer's diffID after decompressing it (gzip,
// zstd or none, found by sniffing the bytes and checked against the media
// type, except in a docker-archive, whose synthesised manifest calls every
// layer gzip), the config's digest, and that rootfs.diff_ids and the non-empty
// history entries count as many as the layers. A manifest list or index has
// each of its instances verified.
//
// Layers are read as the source serves them for copying
// (LayerInfosForCopy), so an image in containers-storage is checked against
// its uncompressed layers.
//
// Mismatches are returned in the report, and so are blobs named by a digest
// no blob can have, or that the source does not have (a missing file, a
// registry's BLOB_UNKNOWN; check "digest", "presence"); the error is only
// for what stopped the reading (an unreachable image or manifest, a
// failing read, a cancelled ctx).
func Verify(ctx context.Context, ref types.ImageReference, sys *types.SystemContext) (report VerifyReport, err error) {
	name := transports.ImageName(ref)
	report.Reference = name
	src, err := ref.NewImageSource(ctx, sys)
	if err != nil {
		return report, fmt.Errorf("verifying %s: %w", name, err)
	}
	defer func() {
		if cerr := src.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing %s after verifying it: %w", name, cerr)
		}
	}()
	raw, mtype, err := src.GetManifest(ctx, nil)
	if err != nil {
		return report, fmt.Errorf("verifying %s: reading the manifest: %w", name, err)
	}
	if mtype == "" {
		mtype = manifest.GuessMIMEType(raw)
	}
	report.ManifestType = mtype
	report.ManifestDigest, err = manifest.Digest(raw)
	if err != nil {
		return report, fmt.Errorf("verifying %s: digesting the manifest: %w", name, err)
	}
	v := &verifier{ctx: ctx, src: src, report: &report, anyCompression: ref.Transport().Name() == "docker-archive"}
	if want, ok := expectedManifest(ref, sys); ok {
		v.checkManifestBlob("", raw, want)
	}
	if err := v.checkManifest("", raw, mtype, 0); err != nil {
		return report, fmt.Errorf("verifying %s: %w", name, err)
	}
	return report, nil
}

// expectedManifest is the descriptor of the manifest the reference itself
// names, when it names one: a digested reference, or the index entry of an
// oci: layout.
func expectedManifest(ref types.ImageReference, sys *types.SystemContext) (v1.Descriptor, bool) {
	if ref.Transport().Name() == "oci" {
		if desc, err := layout.LoadManifestDescriptor(ref); err == nil {
			return desc, true
		}
	}
	if c, ok := ref.DockerReference().(reference.Canonical); ok {
		return v1.Descriptor{Digest: c.Digest(), Size: -1}, true
	}
	return v1.Descriptor{}, false
}

// maxListDepth bounds lists nested in lists.
const maxListDepth = 4

// verifier walks one image source and records problems in its report.
type verifier struct {
	ctx    context.Context
	src    types.ImageSource
	report *VerifyReport
	// anyCompression skips the check of each layer's compression against
	// its media type: a docker-archive source synthesises its manifest and
	// names every layer gzip, whatever the archive holds.
	anyCompression bool
}

func (v *verifier) problem(p VerifyProblem) { v.report.Problems = append(v.report.Problems, p) }

// checkManifestBlob compares a manifest's bytes with the descriptor that
// names it.
func (v *verifier) checkManifestBlob(instance digest.Digest, raw []byte, want v1.Descriptor) {
	if want.Digest != "" {
		if got := digestOrEmpty(want.Digest, raw); got == "" {
			v.problem(VerifyProblem{Instance: instance, Object: "manifest", Digest: want.Digest, Check: "digest", Want: want.Digest.String(), Got: "an invalid digest"})
		} else if got != want.Digest {
			v.problem(VerifyProblem{Instance: instance, Object: "manifest", Digest: want.Digest, Check: "digest", Want: want.Digest.String(), Got: got.String()})
		}
	}
	if want.Size >= 0 && want.Digest != "" && int64(len(raw)) != want.Size {
		v.problem(VerifyProblem{Instance: instance, Object: "manifest", Digest: want.Digest, Check: "size", Want: strconv.FormatInt(want.Size, 10), Got: strconv.Itoa(len(raw))})
	}
}

// checkManifest verifies the image or list raw describes, taken as a
// manifest of type mtype (as whatever refers to it says), which the
// manifest's own mediaType, when it has one, must not contradict.
func (v *verifier) checkManifest(instance digest.Digest, raw []byte, mtype string, depth int) error {
	var own struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(raw, &own) == nil && own.MediaType != "" && own.MediaType != mtype {
		v.problem(VerifyProblem{Instance: instance, Object: "manifest", Check: "media type", Want: mtype + " (as referred to)", Got: own.MediaType})
	}
	if !manifest.MIMETypeIsMultiImage(mtype) {
		return v.checkImage(instance, raw, mtype)
	}
	list, err := manifest.ListFromBlob(raw, mtype)
	if err != nil {
		v.problem(VerifyProblem{Instance: instance, Object: "manifest", Check: "parse", Want: "a valid " + mtype, Got: err.Error()})
		return nil
	}
	if depth >= maxListDepth {
		v.problem(VerifyProblem{Instance: instance, Object: "manifest", Check: "parse", Want: fmt.Sprintf("lists nested at most %d deep", maxListDepth), Got: "a deeper list"})
		return nil
	}
	for _, d := range list.Instances() {
		if err := v.ctx.Err(); err != nil {
			return err
		}
		entry, err := list.Instance(d)
		if err != nil {
			return fmt.Errorf("reading instance %s of the list: %w", d, err)
		}
		raw, mt, err := v.src.GetManifest(v.ctx, &d)
		if err != nil {
			return fmt.Errorf("reading the manifest of instance %s: %w", d, err)
		}
		if mt == "" {
			mt = entry.MediaType
		}
		if mt == "" {
			mt = manifest.GuessMIMEType(raw)
		}
		v.checkManifestBlob(d, raw, v1.Descriptor{Digest: d, Size: entry.Size})
		if err := v.checkManifest(d, raw, mt, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// verifyConfig holds the parts of an OCI or Docker config that Verify
// checks; both formats spell them alike.
type verifyConfig struct {
	RootFS *struct {
		DiffIDs []digest.Digest `json:"diff_ids"`
	} `json:"rootfs"`
	History []struct {
		EmptyLayer bool `json:"empty_layer,omitempty"`
	} `json:"history"`
}

// checkImage verifies one image's config and layers.
func (v *verifier) checkImage(instance digest.Digest, raw []byte, mtype string) error {
	v.report.Images++
	m, err := manifest.FromBlob(raw, mtype)
	if err != nil {
		v.problem(VerifyProblem{Instance: instance, Object: "manifest", Check: "parse", Want: "a valid " + mtype, Got: err.Error()})
		return nil
	}
	var instancePtr *digest.Digest
	if instance != "" {
		instancePtr = &instance
	}
	layers, err := v.src.LayerInfosForCopy(v.ctx, instancePtr)
	if err != nil {
		return fmt.Errorf("listing the layers to read: %w", err)
	}
	if layers == nil {
		for _, l := range m.LayerInfos() {
			layers = append(layers, l.BlobInfo)
		}
	}

	var cfg *verifyConfig
	if ci := m.ConfigInfo(); ci.Digest != "" {
		if want := configMediaType(mtype); want != "" && ci.MediaType != want {
			v.problem(VerifyProblem{Instance: instance, Object: "config", Digest: ci.Digest, Check: "media type", Want: want, Got: ci.MediaType})
		}
		data, err := v.readConfig(instance, ci)
		if err != nil {
			return err
		}
		if data != nil { // nil: missing, a problem reported already
			cfg = &verifyConfig{}
			if err := json.Unmarshal(data, cfg); err != nil {
				v.problem(VerifyProblem{Instance: instance, Object: "config", Digest: ci.Digest, Check: "parse", Want: "a JSON image config", Got: err.Error()})
				cfg = nil
			}
		}
	}

	var diffIDs []digest.Digest
	if cfg != nil {
		if cfg.RootFS != nil {
			diffIDs = cfg.RootFS.DiffIDs
		}
		if len(diffIDs) != len(layers) {
			v.problem(VerifyProblem{Instance: instance, Object: "image", Check: "diff_ids count", Want: fmt.Sprintf("%d (the layers in the manifest)", len(layers)), Got: strconv.Itoa(len(diffIDs))})
		}
		if len(cfg.History) > 0 {
			nonEmpty := 0
			for _, h := range cfg.History {
				if !h.EmptyLayer {
					nonEmpty++
				}
			}
			if nonEmpty != len(layers) {
				v.problem(VerifyProblem{Instance: instance, Object: "image", Check: "history count", Want: fmt.Sprintf("%d non-empty entries (the layers in the manifest)", len(layers)), Got: strconv.Itoa(nonEmpty)})
			}
		}
	}
	for i, l := range layers {
		if err := v.ctx.Err(); err != nil {
			return err
		}
		var wantDiffID digest.Digest
		if i < len(diffIDs) {
			wantDiffID = diffIDs[i]
		}
		if err := v.checkLayer(instance, fmt.Sprintf("layer %d", i), l, wantDiffID); err != nil {
			return err
		}
	}
	return nil
}

// readConfig reads the config blob and checks its digest and size. A blob
// that is missing, or named by a digest no blob can have, is a problem of
// the image: it returns nil then, and no error.
func (v *verifier) readConfig(instance digest.Digest, info types.BlobInfo) ([]byte, error) {
	rc, reported, err := v.openBlob(instance, "config", info)
	if rc == nil || err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(&ctxReader{ctx: v.ctx, r: rc})
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", info.Digest, err)
	}
	v.report.Blobs++
	v.checkBlob(instance, "config", info, digestOrEmpty(info.Digest, data), int64(len(data)), reported)
	return data, nil
}

// openBlob opens a blob the image names. One named by a digest no blob can
// have, or missing from the source, is recorded as a problem, and nil
// returned with no error, so that the rest of the image is checked too.
func (v *verifier) openBlob(instance digest.Digest, object string, info types.BlobInfo) (io.ReadCloser, int64, error) {
	if err := info.Digest.Validate(); err != nil {
		v.problem(VerifyProblem{Instance: instance, Object: object, Digest: info.Digest, Check: "digest", Want: "a valid digest", Got: fmt.Sprintf("%q (%v)", string(info.Digest), err)})
		return nil, 0, nil
	}
	rc, reported, err := v.src.GetBlob(v.ctx, info, none.NoCache)
	switch {
	case blobMissing(err):
		v.problem(VerifyProblem{Instance: instance, Object: object, Digest: info.Digest, Check: "presence", Want: "the blob", Got: "none: " + err.Error()})
		return nil, 0, nil
	case err != nil:
		return nil, 0, fmt.Errorf("reading %s blob %s: %w", object, info.Digest, err)
	}
	return rc, reported, nil
}

// blobMissing says whether err is a source's way of saying it has no such
// blob: a local source's missing file, a registry's BLOB_UNKNOWN.
func blobMissing(err error) bool {
	var coder errcode.ErrorCoder
	return errors.Is(err, fs.ErrNotExist) || (errors.As(err, &coder) && coder.ErrorCode() == v2.ErrorCodeBlobUnknown)
}

// checkBlob compares a blob's recomputed digest and size with its
// descriptor and with the size the source reported.
func (v *verifier) checkBlob(instance digest.Digest, object string, info types.BlobInfo, got digest.Digest, size, reported int64) {
	switch {
	case got == "":
		v.problem(VerifyProblem{Instance: instance, Object: object, Digest: info.Digest, Check: "digest", Want: string(info.Digest), Got: "an invalid or unsupported digest"})
	case got != info.Digest:
		v.problem(VerifyProblem{Instance: instance, Object: object, Digest: info.Digest, Check: "digest", Want: info.Digest.String(), Got: got.String()})
	}
	if info.Size >= 0 && size != info.Size {
		v.problem(VerifyProblem{Instance: instance, Object: object, Digest: info.Digest, Check: "size", Want: strconv.FormatInt(info.Size, 10), Got: strconv.FormatInt(size, 10)})
	}
	if reported >= 0 && reported != size {
		v.problem(VerifyProblem{Instance: instance, Object: object, Digest: info.Digest, Check: "reported size", Want: strconv.FormatInt(size, 10) + " (the bytes read)", Got: strconv.FormatInt(reported, 10)})
	}
}

// checkLayer reads one layer blob in a single pass: its digest and size as
// stored, and its diffID after decompression.
func (v *verifier) checkLayer(instance digest.Digest, object string, info types.BlobInfo, wantDiffID digest.Digest) error {
	rc, reported, err := v.openBlob(instance, object, info)
	if rc == nil || err != nil {
		return err
	}
	defer rc.Close()
	in := &ctxReader{ctx: v.ctx, r: rc}
	blobDigester := digesterFor(info.Digest)
	counter := &verifyCounter{}
	var sinks []io.Writer = []io.Writer{counter}
	if blobDigester != nil {
		sinks = append(sinks, blobDigester.Hash())
	}
	br := bufio.NewReaderSize(io.TeeReader(in, io.MultiWriter(sinks...)), 1<<20)
	head, _ := br.Peek(4)
	if in.err != nil {
		return fmt.Errorf("reading %s blob %s: %w", object, info.Digest, in.err)
	}
	found := sniffCompression(head)

	diffDigester := digest.Canonical.Digester()
	decompErr := decompressTo(diffDigester.Hash(), br, found)
	if in.err != nil {
		return fmt.Errorf("reading %s blob %s: %w", object, info.Digest, in.err)
	}
	// Whatever the decompressor left unread still counts for the blob digest.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return fmt.Errorf("reading %s blob %s: %w", object, info.Digest, err)
	}
	v.report.Blobs++
	var got digest.Digest
	if blobDigester != nil {
		got = blobDigester.Digest()
	}
	v.checkBlob(instance, object, info, got, counter.n, reported)

	if want, ok := layerCompression(info.MediaType); !ok {
		v.problem(VerifyProblem{Instance: instance, Object: object, Digest: info.Digest, Check: "media type", Want: "a known layer media type", Got: info.MediaType})
	} else if want != found && !v.anyCompression {
		v.problem(VerifyProblem{Instance: instance, Object: object, Digest: info.Digest, Check: "compression", Want: want.String() + " (from media type " + info.MediaType + ")", Got: found.String()})
	}
	if decompErr != nil {
		v.problem(VerifyProblem{Instance: instance, Object: object, Digest: info.Digest, Check: "decompression", Want: "a valid " + found.String() + " stream", Got: decompErr.Error()})
		return nil
	}
	if wantDiffID != "" && diffDigester.Digest() != wantDiffID {
		v.problem(VerifyProblem{Instance: instance, Object: object, Digest: info.Digest, Check: "diffID", Want: wantDiffID.String(), Got: diffDigester.Digest().String()})
	}
	return nil
}

// decompressTo writes the tar that src, compressed with c, holds to dst.
// Extra options bound the zstd decoder further.
func decompressTo(dst io.Writer, src io.Reader, c Compression, zopts ...zstd.DOption) error {
	switch c {
	case CompressionGzip:
		zr, err := gzip.NewReader(src)
		if err != nil {
			return err
		}
		defer zr.Close()
		_, err = io.Copy(dst, zr)
		return err
	case CompressionZstd:
		zr, err := zstd.NewReader(src, append([]zstd.DOption{zstd.WithDecoderConcurrency(1)}, zopts...)...)
		if err != nil {
			return err
		}
		defer zr.Close()
		_, err = io.Copy(dst, zr)
		return err
	}
	_, err := io.Copy(dst, src)
	return err
}

// sniffCompression tells gzip and zstd (including a leading skippable
// frame) from anything else, which is taken to be an uncompressed tar.
func sniffCompression(head []byte) Compression {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return CompressionGzip
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return CompressionZstd
	case len(head) == 4 && head[0]&0xf0 == 0x50 && bytes.Equal(head[1:], []byte{0x2a, 0x4d, 0x18}):
		return CompressionZstd
	}
	return CompressionNone
}

// layerCompression is the compression a layer media type promises; false
// for a media type that is not a known layer type.
func layerCompression(mediaType string) (Compression, bool) {
	switch mediaType {
	case v1.MediaTypeImageLayer, docker.V2S2MediaTypeUncompressedLayer,
		"application/vnd.oci.image.layer.nondistributable.v1.tar":
		return CompressionNone, true
	case v1.MediaTypeImageLayerGzip, docker.V2S2MediaTypeLayer, docker.V2S2MediaTypeForeignLayer,
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip":
		return CompressionGzip, true
	case v1.MediaTypeImageLayerZstd,
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd":
		return CompressionZstd, true
	case "":
		// Docker schema 1 manifests carry no layer media types; their
		// layers are gzip.
		return CompressionGzip, true
	}
	return 0, false
}

// configMediaType is the config media type a manifest of type mtype must
// name, "" when it has no config descriptor.
func configMediaType(mtype string) string {
	switch manifest.NormalizedMIMEType(mtype) {
	case v1.MediaTypeImageManifest:
		return v1.MediaTypeImageConfig
	case manifest.DockerV2Schema2MediaType:
		return docker.V2S2MediaTypeImageConfig
	}
	return ""
}

// digesterFor is a digester of want's algorithm, nil when that algorithm
// is unknown or unavailable.
func digesterFor(want digest.Digest) digest.Digester {
	alg := want.Algorithm()
	if want.Validate() != nil || !alg.Available() {
		return nil
	}
	return alg.Digester()
}

// digestOrEmpty is data's digest in want's algorithm, "" when that
// algorithm is unknown or unavailable.
func digestOrEmpty(want digest.Digest, data []byte) digest.Digest {
	alg := want.Algorithm()
	if want.Validate() != nil || !alg.Available() {
		return ""
	}
	return alg.FromBytes(data)
}

// ctxReader fails once ctx is done and remembers the first error its
// reader returned other than io.EOF, so that read failures are told apart
// from decompression failures.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	err error
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if err := c.ctx.Err(); err != nil {
		c.err = err
		return 0, err
	}
	n, err := c.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		c.err = err
	}
	return n, err
}

// verifyCounter counts the bytes written to it.
type verifyCounter struct{ n int64 }

func (c *verifyCounter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
