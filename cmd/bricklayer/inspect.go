package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/bricklayer/bricklayer"
	"github.com/bricklayer/bricklayer/docker"
	units "github.com/docker/go-units"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/transports"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
)

// containerInfo is what "inspect --json" prints for a working container.
type containerInfo struct {
	Type         string            `json:"type"` // "container"
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	FromImage    string            `json:"from_image"`
	FromImageID  string            `json:"from_image_id,omitempty"`
	MountPoint   string            `json:"mount_point,omitempty"`
	OCIConfig    v1.Image          `json:"oci_config"`
	DockerConfig docker.V2Image    `json:"docker_config"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// imageInfo is what "inspect --json" prints for an image.
type imageInfo struct {
	Type           string          `json:"type"` // "image"
	Reference      string          `json:"reference"`
	ID             string          `json:"id,omitempty"`
	Names          []string        `json:"names,omitempty"`
	ManifestDigest digest.Digest   `json:"manifest_digest"`
	ManifestType   string          `json:"manifest_type"`
	Manifest       json.RawMessage `json:"manifest"`
	OCIConfig      *v1.Image       `json:"oci_config"`
	Layers         []layerInfo     `json:"layers"`
}

type layerInfo struct {
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
	MediaType string        `json:"media_type,omitempty"`
}

func (a *app) inspectCommand() *cobra.Command {
	var (
		asJSON   bool
		kind     string
		registry registryFlags
	)
	cmd := &cobra.Command{
		Use:   "inspect CONTAINER|IMAGE",
		Short: "Show a working container's or an image's config",
		Long: `Show what a working container will be committed with, or what an image holds.

The argument is looked up as a transport reference (oci:DIR:TAG, docker://...)
when it starts with a transport name, else as a container, else as an image
in the store; --type chooses between the last two.`,
		Example: `  bricklayer inspect work
  bricklayer inspect --json myapp | jq .oci_config.config.Env
  bricklayer inspect oci:./out:latest`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			if kind != "" && kind != "container" && kind != "image" {
				return usagef("--type %q: want container or image", kind)
			}
			sys, err := registry.systemContext()
			if err != nil {
				return err
			}
			store, err := a.openStore()
			if err != nil {
				return err
			}
			name := args[0]
			var info any
			if ref, ok, err := transportRef(name); ok {
				if err != nil {
					return err
				}
				info, err = inspectImage(cmd.Context(), ref, sys, nil)
				if err != nil {
					return err
				}
			} else if _, err := store.Container(name); err == nil && kind != "image" {
				b, err := openContainer(store, name)
				if err != nil {
					return err
				}
				info = inspectContainer(b)
			} else if kind == "container" {
				return fmt.Errorf("no container %q in the store %s", name, store.GraphRoot())
			} else {
				img, err := findImage(store, name)
				if errors.Is(err, bricklayer.ErrImageNotFound) && kind == "" {
					return fmt.Errorf("no container or image %q in the store %s", name, store.GraphRoot())
				}
				if err != nil {
					return err
				}
				ref, err := imageRef(store, img.ID)
				if err != nil {
					return err
				}
				info, err = inspectImage(cmd.Context(), ref, sys, img)
				if err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return printJSON(out, info)
			}
			return describe(out, info)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print everything as JSON")
	cmd.Flags().StringVarP(&kind, "type", "t", "", "look only for a container or only for an image")
	registry.register(cmd.Flags(), &a.storage)
	_ = cmd.RegisterFlagCompletionFunc("type", cobra.FixedCompletions([]string{"container", "image"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		ctrs, _ := a.completeContainers(1)(cmd, args, toComplete)
		imgs, d := a.completeImages(1)(cmd, args, toComplete)
		return append(ctrs, imgs...), d
	}
	return cmd
}

func inspectContainer(b *bricklayer.Builder) containerInfo {
	return containerInfo{
		Type:         "container",
		ID:           b.ContainerID(),
		Name:         b.ContainerName(),
		FromImage:    b.FromImage(),
		FromImageID:  b.FromImageID(),
		MountPoint:   b.MountPoint(),
		OCIConfig:    b.OCIConfig(),
		DockerConfig: b.DockerConfig(),
		Annotations:  b.Annotations(),
	}
}

// inspectImage reads an image's manifest and config; stored, when not nil,
// is the image in the store that ref names.
func inspectImage(ctx context.Context, ref types.ImageReference, sys *types.SystemContext, stored *storage.Image) (imageInfo, error) {
	name := transports.ImageName(ref)
	img, err := ref.NewImage(ctx, sys)
	if err != nil {
		return imageInfo{}, fmt.Errorf("opening image %s: %w", name, err)
	}
	defer img.Close()
	mb, mtype, err := img.Manifest(ctx)
	if err != nil {
		return imageInfo{}, fmt.Errorf("reading the manifest of %s: %w", name, err)
	}
	mdigest, err := manifest.Digest(mb)
	if err != nil {
		return imageInfo{}, fmt.Errorf("digesting the manifest of %s: %w", name, err)
	}
	oc, err := img.OCIConfig(ctx)
	if err != nil {
		return imageInfo{}, fmt.Errorf("reading the config of %s: %w", name, err)
	}
	info := imageInfo{
		Type:           "image",
		Reference:      name,
		ManifestDigest: mdigest,
		ManifestType:   mtype,
		Manifest:       json.RawMessage(mb),
		OCIConfig:      oc,
		Layers:         []layerInfo{},
	}
	if stored != nil {
		// The store's reference names the store's directories: a name reads better.
		info.ID, info.Names = stored.ID, stored.Names
		info.Reference = stored.ID
		if len(stored.Names) > 0 {
			info.Reference = stored.Names[0]
		}
	} else {
		info.ID = img.ConfigInfo().Digest.Encoded()
	}
	for _, l := range img.LayerInfos() {
		info.Layers = append(info.Layers, layerInfo{Digest: l.Digest, Size: l.Size, MediaType: l.MediaType})
	}
	return info, nil
}

// describe prints info for people: one field per line, empty ones left out.
func describe(w io.Writer, info any) error {
	tw := newTable(w)
	field := func(k string, v any) {
		if s := fmt.Sprint(v); s != "" && s != "[]" && s != "map[]" && s != "<nil>" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, s)
		}
	}
	var oc v1.Image
	var annotations map[string]string
	switch i := info.(type) {
	case containerInfo:
		field("Container", i.Name)
		field("ID", i.ID)
		field("From", i.FromImage)
		if i.FromImageID != i.FromImage {
			field("From ID", i.FromImageID)
		}
		field("Mount point", i.MountPoint)
		oc, annotations = i.OCIConfig, i.Annotations
	case imageInfo:
		field("Image", i.Reference)
		field("ID", i.ID)
		field("Names", strings.Join(i.Names, ", "))
		field("Manifest", fmt.Sprintf("%s (%s)", i.ManifestDigest, i.ManifestType))
		if i.OCIConfig != nil {
			oc = *i.OCIConfig
		}
		if m, err := manifest.OCI1FromManifest(i.Manifest); err == nil {
			annotations = m.Annotations
		}
	}
	if oc.Created != nil {
		field("Created", oc.Created.UTC().Format("2006-01-02T15:04:05Z"))
	}
	field("Author", oc.Author)
	field("Platform", strings.TrimSuffix(oc.OS+"/"+oc.Architecture+"/"+oc.Variant, "/"))
	c := oc.Config
	field("User", c.User)
	field("Working dir", c.WorkingDir)
	field("Entrypoint", jsonArray(c.Entrypoint))
	field("Cmd", jsonArray(c.Cmd))
	field("Env", strings.Join(c.Env, "\n\t"))
	field("Labels", keyValues(c.Labels))
	field("Ports", strings.Join(slices.Sorted(maps.Keys(c.ExposedPorts)), " "))
	field("Volumes", strings.Join(slices.Sorted(maps.Keys(c.Volumes)), " "))
	field("Stop signal", c.StopSignal)
	field("Annotations", keyValues(annotations))
	if i, ok := info.(imageInfo); ok {
		for n, l := range i.Layers {
			field(fmt.Sprintf("Layer %d", n+1), fmt.Sprintf("%s  %s", l.Digest, units.BytesSize(float64(l.Size))))
		}
	}
	for n, h := range oc.History {
		created := ""
		if h.Created != nil {
			created = h.Created.UTC().Format("2006-01-02 15:04:05") + "  "
		}
		step := h.CreatedBy
		if h.Comment != "" {
			step += "  # " + h.Comment
		}
		if h.EmptyLayer {
			step += "  (no layer)"
		}
		field(fmt.Sprintf("History %d", n+1), created+step)
	}
	return tw.Flush()
}

func jsonArray(s []string) string {
	if s == nil {
		return ""
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func keyValues(m map[string]string) string {
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		lines = append(lines, k+"="+m[k])
	}
	return strings.Join(lines, "\n\t")
}
