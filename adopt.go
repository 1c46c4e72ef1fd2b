package bricklayer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/bricklayer/bricklayer/docker"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"go.podman.io/storage"
)

// This file opens working containers that other tools made in the store:
// buildah's and podman's, which have no bricklayer state.

// buildahStateFile is the file in a container's directory where buildah
// keeps the state of a working container it made.
const buildahStateFile = "buildah.json"

// buildahState is what bricklayer takes of buildah's state: the config the
// container's image will have (kept in step in both formats by buildah's
// setters, starting from the base image's) and the notes for the history
// entry a commit adds.
type buildahState struct {
	Type        string            `json:"type"`
	OCIConfig   v1.Image          `json:"ociv1"`
	Docker      docker.V2Image    `json:"docker"`
	CreatedBy   string            `json:"created-by"`
	HistoryNote string            `json:"history-comment"`
	Annotations map[string]string `json:"annotations"`
}

// adopt opens a container that another tool made, whose directory is dir:
// its base layers, history and diffIDs are those of the image it was made
// from; its config is what buildah keeps for it when buildah made it (so
// that `buildah config` edits are kept), else the image's. Once bricklayer
// saves its own state for the container (on its first change), that state
// is the container's config for bricklayer, and buildah's later edits are
// not seen.
func (b *Builder) adopt(ctr *storage.Container, dir string) (*Builder, error) {
	name := ctr.ID
	if len(ctr.Names) > 0 {
		name = ctr.Names[0]
	}
	b.state = builderState{Version: stateVersion, ContainerID: ctr.ID, ContainerName: name, FromImage: Scratch}
	if ctr.ImageID == "" {
		b.state.OCIConfig = v1.Image{Platform: v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}}
		b.state.DockerConfig = dockerFromOCI(b.state.OCIConfig)
	} else {
		b.state.FromImage, b.state.FromImageID = ctr.ImageID, ctr.ImageID
		if err := b.loadBaseImage(context.Background(), nil); err != nil {
			return nil, fmt.Errorf("opening container %q made by another tool: %w", name, err)
		}
	}
	bs, err := readBuildahState(dir)
	switch {
	case err != nil:
		logrus.Warnf("container %s: %v; taking the config of its image instead", name, err)
	case bs != nil:
		b.takeBuildahConfig(bs)
	}
	return b, nil
}

// readBuildahState reads buildah's state from the container directory dir:
// nil when there is none.
func readBuildahState(dir string) (*buildahState, error) {
	path := filepath.Join(dir, buildahStateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading buildah's state: %w", err)
	}
	var bs buildahState
	if err := json.Unmarshal(data, &bs); err != nil {
		return nil, fmt.Errorf("parsing buildah's state %s: %w", path, err)
	}
	if !strings.HasPrefix(bs.Type, "buildah") {
		return nil, fmt.Errorf("%s is of type %q, not buildah's", path, bs.Type)
	}
	return &bs, nil
}

// takeBuildahConfig makes buildah's config of the container the builder's,
// keeping the base image's layers and history, which the builder has read
// from the image itself. The annotations buildah notes for the base image
// (org.opencontainers.image.base.*) are left out: buildah fills them in as
// it commits, and records them empty until then.
func (b *Builder) takeBuildahConfig(bs *buildahState) {
	oci := bs.OCIConfig
	oci.RootFS, oci.History = b.state.OCIConfig.RootFS, b.state.OCIConfig.History
	b.state.OCIConfig = oci
	dc := bs.Docker
	if dc.Config == nil {
		// No Docker config kept (not buildah 1.x's way): the OCI one says it.
		dc = dockerFromOCI(oci)
	}
	dc.RootFS, dc.History = b.state.DockerConfig.RootFS, b.state.DockerConfig.History
	b.state.DockerConfig = dc
	b.state.CreatedBy, b.state.HistoryNote = bs.CreatedBy, bs.HistoryNote
	for k, v := range bs.Annotations {
		if strings.HasPrefix(k, "org.opencontainers.image.base.") {
			continue
		}
		if b.state.Annotations == nil {
			b.state.Annotations = map[string]string{}
		}
		b.state.Annotations[k] = v
	}
}
