package bricklayer

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/bricklayer/bricklayer/docker"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"go.podman.io/image/v5/types"
)

// describe fills in the source's blobs, config and manifest from the
// builder's state, the base layers and the layers just exported.
func (s *imageSource) describe(state *builderState, base []baseLayer, baseExported map[int]exportedLayer, exported []exportedLayer, compression Compression, serveOrigin bool) error {
	opts := s.ref.opts
	mtype := opts.manifestType()
	created := opts.createdTime()
	opts.adjustState(state)

	var layers []v1.Descriptor
	var diffIDs []digest.Digest
	var infosForCopy []types.BlobInfo
	substituted := false
	for i, bl := range base {
		if el, ok := baseExported[i]; ok {
			desc := v1.Descriptor{MediaType: layerMediaType(mtype, compression), Digest: el.Digest, Size: el.Size}
			s.blobs[el.Digest] = blob{size: el.Size, path: el.path}
			layers = append(layers, desc)
			diffIDs = append(diffIDs, el.DiffID)
			infosForCopy = append(infosForCopy, blobInfo(desc))
			continue
		}
		desc, ok := convertLayerDescriptor(bl.descriptor(), mtype)
		diffIDs = append(diffIDs, bl.DiffID)
		uncompressed := v1.Descriptor{MediaType: layerMediaType(mtype, CompressionNone), Digest: bl.DiffID, Size: -1}
		if l, err := s.store.Layer(bl.LayerID); err == nil && l.UncompressedSize > 0 {
			uncompressed.Size = l.UncompressedSize
		}
		switch {
		case ok && desc.Digest == bl.DiffID:
			s.blobs[desc.Digest] = blob{size: desc.Size, layerID: bl.LayerID}
			layers = append(layers, desc)
			infosForCopy = append(infosForCopy, blobInfo(desc))
		case ok && serveOrigin:
			s.blobs[desc.Digest] = blob{size: desc.Size, fromOrigin: true}
			layers = append(layers, desc)
			infosForCopy = append(infosForCopy, blobInfo(desc))
		case ok:
			// The manifest keeps the base image's blob, so a destination
			// that has it reuses it; the copy reads the uncompressed diff.
			s.blobs[bl.DiffID] = blob{size: uncompressed.Size, layerID: bl.LayerID}
			layers = append(layers, desc)
			infosForCopy = append(infosForCopy, blobInfo(uncompressed))
			substituted = true
		default:
			s.blobs[bl.DiffID] = blob{size: uncompressed.Size, layerID: bl.LayerID}
			layers = append(layers, uncompressed)
			infosForCopy = append(infosForCopy, blobInfo(uncompressed))
		}
	}
	for _, el := range exported {
		desc := v1.Descriptor{MediaType: layerMediaType(mtype, compression), Digest: el.Digest, Size: el.Size, Annotations: opts.layerAnnotations()}
		s.blobs[el.Digest] = blob{size: el.Size, path: el.path, layerID: el.storeLayer}
		layers = append(layers, desc)
		diffIDs = append(diffIDs, el.DiffID)
		infosForCopy = append(infosForCopy, blobInfo(desc))
	}
	if substituted {
		s.layerInfosForCopy = infosForCopy
	}

	newHistory := opts.newHistory(state, len(exported), created)

	var err error
	switch mtype {
	case docker.V2S2MediaTypeManifest:
		s.config, err = dockerConfig(state, created, diffIDs, newHistory)
	default:
		s.config, err = ociConfig(state, created, diffIDs, newHistory)
	}
	if err != nil {
		return err
	}
	s.configDigest = digest.Canonical.FromBytes(s.config)
	s.manifestType = mtype
	s.manifest, err = buildManifest(mtype, s.configDigest, int64(len(s.config)), layers, state.Annotations)
	return err
}

// ociConfig is the OCI config blob of the image.
func ociConfig(state *builderState, created time.Time, diffIDs []digest.Digest, newHistory []v1.History) ([]byte, error) {
	for _, f := range dockerOnlyFields(state) {
		logrus.Warnf("committing container %s as an OCI image: the OCI format has no %s, the image goes without it", state.ContainerName, f)
	}
	c := state.OCIConfig
	c.Created = &created
	c.RootFS = v1.RootFS{Type: "layers", DiffIDs: diffIDs}
	if c.RootFS.DiffIDs == nil {
		c.RootFS.DiffIDs = []digest.Digest{}
	}
	c.History = append(slices.Clone(c.History), newHistory...)
	return json.Marshal(&c)
}

// dockerConfig is the Docker v2s2 config blob of the image.
func dockerConfig(state *builderState, created time.Time, diffIDs []digest.Digest, newHistory []v1.History) ([]byte, error) {
	c := state.DockerConfig
	c.Created = created
	c.Author = state.OCIConfig.Author
	c.OS, c.Architecture, c.Variant = state.OCIConfig.OS, state.OCIConfig.Architecture, state.OCIConfig.Variant
	c.OSVersion, c.OSFeatures = state.OCIConfig.OSVersion, slices.Clone(state.OCIConfig.OSFeatures)
	if c.Config == nil {
		c.Config = &docker.Config{}
	}
	c.ContainerConfig = *c.Config
	c.Container = ""
	c.ID, c.V1Image.Parent, c.Parent = "", "", ""
	c.RootFS = &docker.V2S2RootFS{Type: docker.V2S2RootFSTypeLayers, DiffIDs: diffIDs}
	c.History = slices.Clone(c.History)
	for _, h := range newHistory {
		c.History = append(c.History, docker.V2S2History{Created: *h.Created, Author: h.Author, CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer})
	}
	return json.Marshal(&c)
}

// buildManifest is the image manifest of type mtype.
func buildManifest(mtype string, configDigest digest.Digest, configSize int64, layers []v1.Descriptor, annotations map[string]string) ([]byte, error) {
	if mtype == docker.V2S2MediaTypeManifest {
		m := docker.V2S2Manifest{
			SchemaVersion: 2,
			MediaType:     docker.V2S2MediaTypeManifest,
			Config:        docker.Descriptor{MediaType: docker.V2S2MediaTypeImageConfig, Digest: configDigest, Size: configSize},
			Layers:        []docker.Descriptor{},
		}
		for _, l := range layers {
			m.Layers = append(m.Layers, docker.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size, URLs: l.URLs})
		}
		return json.Marshal(&m)
	}
	m := v1.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   v1.MediaTypeImageManifest,
		Config:      v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: configDigest, Size: configSize},
		Layers:      append([]v1.Descriptor{}, layers...),
		Annotations: maps.Clone(annotations),
	}
	return json.Marshal(&m)
}

// layerMediaType is the media type of a layer of compression c in a
// manifest of type mtype.
func layerMediaType(mtype string, c Compression) string {
	if mtype == docker.V2S2MediaTypeManifest {
		if c == CompressionNone {
			return docker.V2S2MediaTypeUncompressedLayer
		}
		return docker.V2S2MediaTypeLayer
	}
	switch c {
	case CompressionNone:
		return v1.MediaTypeImageLayer
	case CompressionZstd:
		return v1.MediaTypeImageLayerZstd
	}
	return v1.MediaTypeImageLayerGzip
}

// convertLayerDescriptor gives a base layer's descriptor the media type that
// means the same in a manifest of type mtype; false when that manifest type
// cannot describe the blob (or the descriptor is unknown).
func convertLayerDescriptor(d v1.Descriptor, mtype string) (v1.Descriptor, bool) {
	if d.Digest == "" {
		return d, false
	}
	c, ok := plainLayerCompression(d.MediaType)
	if !ok || (c == CompressionZstd && mtype == docker.V2S2MediaTypeManifest) {
		return d, false
	}
	d.MediaType = layerMediaType(mtype, c)
	if mtype == docker.V2S2MediaTypeManifest {
		d.Annotations = nil
	}
	return d, true
}

// plainLayerCompression says how a layer blob of this media type is
// compressed; false for a media type that is not a plain, distributable
// layer tar (foreign, non-distributable, encrypted, unknown). Verify's
// layerCompression also accepts those it can read.
func plainLayerCompression(mediaType string) (Compression, bool) {
	switch mediaType {
	case v1.MediaTypeImageLayer, docker.V2S2MediaTypeUncompressedLayer:
		return CompressionNone, true
	case v1.MediaTypeImageLayerGzip, docker.V2S2MediaTypeLayer:
		return CompressionGzip, true
	case v1.MediaTypeImageLayerZstd:
		return CompressionZstd, true
	}
	return CompressionNone, false
}

func blobInfo(d v1.Descriptor) types.BlobInfo {
	return types.BlobInfo{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType, URLs: d.URLs, Annotations: d.Annotations}
}

func newBytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
