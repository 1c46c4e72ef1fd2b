package bricklayer

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/bricklayer/bricklayer/docker"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage/pkg/configfile"
)

// dockerFromOCI builds a Docker config holding what an OCI config holds.
func dockerFromOCI(oc v1.Image) docker.V2Image {
	cfg := docker.Config{
		User:         oc.Config.User,
		Env:          slices.Clone(oc.Config.Env),
		Cmd:          slices.Clone(oc.Config.Cmd),
		Entrypoint:   slices.Clone(oc.Config.Entrypoint),
		WorkingDir:   oc.Config.WorkingDir,
		Labels:       maps.Clone(oc.Config.Labels),
		StopSignal:   oc.Config.StopSignal,
		ArgsEscaped:  oc.Config.ArgsEscaped, //nolint:staticcheck // kept for Windows images
		Volumes:      maps.Clone(oc.Config.Volumes),
		ExposedPorts: nil,
	}
	if len(oc.Config.ExposedPorts) > 0 {
		cfg.ExposedPorts = docker.PortSet{}
		for p := range oc.Config.ExposedPorts {
			cfg.ExposedPorts[docker.Port(p)] = struct{}{}
		}
	}
	dc := docker.V2Image{
		V1Image: docker.V1Image{
			Author:       oc.Author,
			Config:       &cfg,
			Architecture: oc.Architecture,
			Variant:      oc.Variant,
			OS:           oc.OS,
		},
		OSVersion:  oc.OSVersion,
		OSFeatures: slices.Clone(oc.OSFeatures),
	}
	if oc.Created != nil {
		dc.Created = *oc.Created
	}
	for _, h := range oc.History {
		dh := docker.V2S2History{Author: h.Author, CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if h.Created != nil {
			dh.Created = *h.Created
		}
		dc.History = append(dc.History, dh)
	}
	return dc
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("reading random bytes: %v", err))
	}
	return hex.EncodeToString(b)
}

// policyContext loads the signature policy at path, or the system default
// when path is "". When no policy file exists anywhere, every image is
// accepted: bricklayer's sources are the caller's own containers.
func policyContext(path string, sys *types.SystemContext) (*signature.PolicyContext, error) {
	var policy *signature.Policy
	var err error
	if path != "" {
		policy, err = signature.NewPolicyFromFile(path)
	} else {
		policy, err = signature.DefaultPolicy(sys)
		if err != nil && (errors.Is(err, os.ErrNotExist) || errors.Is(err, configfile.ErrConfigFileNotFound)) {
			policy, err = &signature.Policy{Default: signature.PolicyRequirements{signature.NewPRInsecureAcceptAnything()}}, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("loading the signature policy %s: %w", path, err)
	}
	pc, err := signature.NewPolicyContext(policy)
	if err != nil {
		return nil, fmt.Errorf("loading the signature policy %s: %w", path, err)
	}
	return pc, nil
}
