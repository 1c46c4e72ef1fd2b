// Package docker holds the Docker image format (schema 2) types that bricklayer
// reads and writes: the image config with its container config, the v2s2
// manifest and its descriptors, history, rootfs and healthcheck. The JSON field
// names are Docker's own, so a config written by Docker round-trips through
// these types. The package holds types and constants only, no logic.
package docker

import (
	"time"

	digest "github.com/opencontainers/go-digest"
)

// Media types of the Docker v2 schema 2 format, as in the distribution
// project's manifest/schema2/manifest.go and manifestlist.go.
const (
	// V2S2MediaTypeManifest is the media type of a schema 2 image manifest.
	V2S2MediaTypeManifest = "application/vnd.docker.distribution.manifest.v2+json"
	// V2S2MediaTypeManifestList is the media type of a schema 2 manifest list.
	V2S2MediaTypeManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	// V2S2MediaTypeImageConfig is the media type of an image config blob.
	V2S2MediaTypeImageConfig = "application/vnd.docker.container.image.v1+json"
	// V2S2MediaTypeLayer is the media type of a gzip-compressed layer.
	V2S2MediaTypeLayer = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	// V2S2MediaTypeUncompressedLayer is the media type of an uncompressed layer.
	V2S2MediaTypeUncompressedLayer = "application/vnd.docker.image.rootfs.diff.tar"
	// V2S2MediaTypeForeignLayer is the media type of a layer that registries
	// may refuse to store (a "foreign" layer with URLs).
	V2S2MediaTypeForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	// V2S2RootFSTypeLayers is the only rootfs type Docker writes.
	V2S2RootFSTypeLayers = "layers"
)

// Descriptor names a blob: Docker's distribution.Descriptor (distribution
// blobs.go) with the fields a schema 2 manifest uses.
type Descriptor struct {
	MediaType   string            `json:"mediaType,omitempty"`
	Size        int64             `json:"size,omitempty"`
	Digest      digest.Digest     `json:"digest,omitempty"`
	URLs        []string          `json:"urls,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *Platform         `json:"platform,omitempty"`
}

// Platform names an OS and architecture (distribution manifestlist.go).
type Platform struct {
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	OSVersion    string   `json:"os.version,omitempty"`
	OSFeatures   []string `json:"os.features,omitempty"`
	Variant      string   `json:"variant,omitempty"`
	Features     []string `json:"features,omitempty"`
}

// V2S2Manifest is a schema 2 image manifest (distribution
// manifest/schema2/manifest.go).
type V2S2Manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType,omitempty"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
}

// Port is a port and protocol, "80/tcp" (docker/go-connections nat.Port).
type Port string

// PortSet is a set of ports (docker/go-connections nat.PortSet).
type PortSet map[Port]struct{}

// HealthConfig is a container's health check (moby api/types/container
// config.go HealthConfig). Durations are in nanoseconds, as Docker writes them.
type HealthConfig struct {
	// Test is the check: [] inherits, ["NONE"] disables, ["CMD", args...]
	// execs, ["CMD-SHELL", command] runs through the shell.
	Test          []string      `json:",omitempty"`
	Interval      time.Duration `json:",omitempty"`
	Timeout       time.Duration `json:",omitempty"`
	StartPeriod   time.Duration `json:",omitempty"`
	StartInterval time.Duration `json:",omitempty"`
	Retries       int           `json:",omitempty"`
}

// Config is the run configuration of a container built from the image (moby
// api/types/container config.go Config).
type Config struct {
	Hostname        string              `json:"Hostname"`
	Domainname      string              `json:"Domainname"`
	User            string              `json:"User"`
	AttachStdin     bool                `json:"AttachStdin"`
	AttachStdout    bool                `json:"AttachStdout"`
	AttachStderr    bool                `json:"AttachStderr"`
	ExposedPorts    PortSet             `json:"ExposedPorts,omitempty"`
	Tty             bool                `json:"Tty"`
	OpenStdin       bool                `json:"OpenStdin"`
	StdinOnce       bool                `json:"StdinOnce"`
	Env             []string            `json:"Env"`
	Cmd             []string            `json:"Cmd"`
	Healthcheck     *HealthConfig       `json:"Healthcheck,omitempty"`
	ArgsEscaped     bool                `json:"ArgsEscaped,omitempty"`
	Image           string              `json:"Image"`
	Volumes         map[string]struct{} `json:"Volumes"`
	WorkingDir      string              `json:"WorkingDir"`
	Entrypoint      []string            `json:"Entrypoint"`
	NetworkDisabled bool                `json:"NetworkDisabled,omitempty"`
	MacAddress      string              `json:"MacAddress,omitempty"`
	OnBuild         []string            `json:"OnBuild"`
	Labels          map[string]string   `json:"Labels"`
	StopSignal      string              `json:"StopSignal,omitempty"`
	StopTimeout     *int                `json:"StopTimeout,omitempty"`
	Shell           []string            `json:"Shell,omitempty"`
}

// V2S2RootFS lists the layers' diffIDs, bottom first (moby image/rootfs.go).
type V2S2RootFS struct {
	Type    string          `json:"type"`
	DiffIDs []digest.Digest `json:"diff_ids,omitempty"`
}

// V2S2History is one step of the image's history (moby image/image.go
// History).
type V2S2History struct {
	Created    time.Time `json:"created"`
	Author     string    `json:"author,omitempty"`
	CreatedBy  string    `json:"created_by,omitempty"`
	Comment    string    `json:"comment,omitempty"`
	EmptyLayer bool      `json:"empty_layer,omitempty"`
}

// ID is an image ID in Docker's image store (moby image/image.go).
type ID digest.Digest

// V1Image is the part of an image config shared with the v1 format (moby
// image/image.go V1Image).
type V1Image struct {
	ID              string    `json:"id,omitempty"`
	Parent          string    `json:"parent,omitempty"`
	Comment         string    `json:"comment,omitempty"`
	Created         time.Time `json:"created"`
	Container       string    `json:"container,omitempty"`
	ContainerConfig Config    `json:"container_config,omitempty"`
	DockerVersion   string    `json:"docker_version,omitempty"`
	Author          string    `json:"author,omitempty"`
	Config          *Config   `json:"config,omitempty"`
	Architecture    string    `json:"architecture,omitempty"`
	Variant         string    `json:"variant,omitempty"`
	OS              string    `json:"os,omitempty"`
	Size            int64     `json:"size,omitempty"`
}

// V2Image is a Docker image config, the blob a schema 2 manifest's config
// descriptor names (moby image/image.go Image).
type V2Image struct {
	V1Image
	Parent     ID            `json:"parent,omitempty"` //nolint:govet // shadows V1Image.Parent, as in Docker
	RootFS     *V2S2RootFS   `json:"rootfs,omitempty"`
	History    []V2S2History `json:"history,omitempty"`
	OSVersion  string        `json:"os.version,omitempty"`
	OSFeatures []string      `json:"os.features,omitempty"`
}
