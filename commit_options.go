package bricklayer

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/bricklayer/bricklayer/docker"
	"github.com/bricklayer/bricklayer/internal/tarnorm"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/signature"
)

// This file says what the CommitOptions beyond format and compression mean
// for the image: which times it records, how layer streams are normalised,
// which layers and history entries the commit writes, and how the config
// and manifest differ from the builder's.

// validateCombinations checks the options that depend on each other.
func (o *CommitOptions) validateCombinations() error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalidOptions)
	}
	if o.HistoryTimestamp != nil && o.SourceDateEpoch != nil {
		return invalid("HistoryTimestamp %s and SourceDateEpoch %s: set one", o.HistoryTimestamp.UTC().Format(time.RFC3339), o.SourceDateEpoch.UTC().Format(time.RFC3339))
	}
	if o.RewriteTimestamps && o.timestamp() == nil {
		return invalid("RewriteTimestamps without SourceDateEpoch: no time to clamp to")
	}
	if o.Squash && o.SquashNewLayers {
		return invalid("Squash and SquashNewLayers: set one")
	}
	if o.EmptyLayer && (o.Squash || o.SquashNewLayers) {
		return invalid("EmptyLayer with a squash: a squash writes a layer")
	}
	if o.manifestType() == docker.V2S2MediaTypeManifest {
		if len(o.Annotations) > 0 {
			return invalid("manifest annotations in a Docker v2s2 image, which cannot hold them (use the OCI format)")
		}
		if len(o.LayerAnnotations) > 0 {
			return invalid("layer annotations in a Docker v2s2 image, which cannot hold them (use the OCI format)")
		}
	}
	for dest, host := range o.ExtraImageContent {
		if imagePath(dest) == "" {
			return invalid("extra image content at %q: not a path below /", dest)
		}
		if host == "" {
			return invalid("extra image content at %q: no host path", dest)
		}
	}
	for _, k := range o.UnsetEnv {
		if k == "" || strings.Contains(k, "=") {
			return invalid("UnsetEnv %q: not a variable name", k)
		}
	}
	if o.SignBy != "" && o.SignByOpenPGPKeyFile != "" {
		return invalid("SignBy and SignByOpenPGPKeyFile: set one")
	}
	if o.SignBy != "" {
		if err := openPGPSigningSupported(); err != nil {
			return fmt.Errorf("signing with key %s: %w: %v", o.SignBy, ErrSigningUnsupported, err)
		}
	}
	return nil
}

// openPGPSigningSupported reports whether containers/image can make simple
// signings in this build.
func openPGPSigningSupported() error {
	mech, err := signature.NewGPGSigningMechanism()
	if err != nil {
		return err
	}
	defer mech.Close()
	return mech.SupportsSigning()
}

// timestamp is the time the options fix for the image, nil for now.
func (o *CommitOptions) timestamp() *time.Time {
	if o.SourceDateEpoch != nil {
		return o.SourceDateEpoch
	}
	return o.HistoryTimestamp
}

// createdTime is the image's created time and that of the history entries
// the commit adds.
func (o *CommitOptions) createdTime() time.Time {
	if t := o.timestamp(); t != nil {
		return t.UTC()
	}
	return time.Now().UTC()
}

// tarNormalization is how the tar streams of the layers the commit writes
// are normalised.
func (o *CommitOptions) tarNormalization() *tarnorm.Options {
	n := &tarnorm.Options{}
	if o.RewriteTimestamps {
		// Whole seconds, as tarnorm writes every other time: a fraction
		// would need a PAX record.
		n.ClampMtime = o.timestamp().UTC().Truncate(time.Second)
	}
	return n
}

// composesLayers is true when the commit's new layers are not simply the
// container's layers above the base image.
func (o *CommitOptions) composesLayers() bool {
	return o.Squash || o.SquashNewLayers || o.EmptyLayer || len(o.ExtraImageContent) > 0
}

// extraLayer is true when ExtraImageContent gets a layer of its own, on top
// of the others.
func (o *CommitOptions) extraLayer() bool {
	return len(o.ExtraImageContent) > 0 && !o.Squash && !o.SquashNewLayers
}

// newHistory is the history entries the commit adds for its layers, newest
// last: one per layer written, the ExtraImageContent layer's with a comment
// that lists its paths, and for EmptyLayer one marked empty_layer.
func (o *CommitOptions) newHistory(state *builderState, layers int, created time.Time) []v1.History {
	if o.OmitHistory {
		return nil
	}
	entry := v1.History{Created: &created, CreatedBy: state.CreatedBy, Comment: state.HistoryNote, Author: state.OCIConfig.Author}
	if o.CreatedBy != "" {
		entry.CreatedBy = o.CreatedBy
	}
	if o.HistoryComment != "" {
		entry.Comment = o.HistoryComment
	}
	var history []v1.History
	own := layers
	if o.extraLayer() {
		own--
	}
	if o.EmptyLayer {
		e := entry
		e.EmptyLayer = true
		history = append(history, e)
		own = 0
	}
	for range own {
		history = append(history, entry)
	}
	if o.extraLayer() {
		e := entry
		e.Comment = "extra image content: " + strings.Join(slices.Sorted(maps.Keys(o.ExtraImageContent)), " ")
		history = append(history, e)
	}
	return history
}

// adjustState changes the commit's copy of the builder's state into what
// the image records: history dropped or marked for a squash, variables and
// labels unset, manifest annotations added. Slices, maps and the Docker
// config are shared with the builder, so they are replaced, not edited.
func (o *CommitOptions) adjustState(state *builderState) {
	switch {
	case o.OmitHistory:
		state.OCIConfig.History = nil
		state.DockerConfig.History = nil
	case o.Squash:
		// The base image's layers are in the squashed one now: their
		// entries stay, but describe no layer of their own.
		state.OCIConfig.History = slices.Clone(state.OCIConfig.History)
		for i := range state.OCIConfig.History {
			state.OCIConfig.History[i].EmptyLayer = true
		}
		state.DockerConfig.History = slices.Clone(state.DockerConfig.History)
		for i := range state.DockerConfig.History {
			state.DockerConfig.History[i].EmptyLayer = true
		}
	}
	if len(o.UnsetEnv) > 0 || len(o.UnsetLabels) > 0 {
		oc := &state.OCIConfig.Config
		oc.Env = unsetEnv(oc.Env, o.UnsetEnv)
		oc.Labels = unsetLabels(oc.Labels, o.UnsetLabels)
		if dc := state.DockerConfig.Config; dc != nil {
			c := *dc
			c.Env = unsetEnv(c.Env, o.UnsetEnv)
			c.Labels = unsetLabels(c.Labels, o.UnsetLabels)
			state.DockerConfig.Config = &c
		}
	}
	if len(o.Annotations) > 0 {
		a := maps.Clone(state.Annotations)
		if a == nil {
			a = map[string]string{}
		}
		maps.Copy(a, o.Annotations)
		state.Annotations = a
	}
}

// unsetEnv is env without the variables named in names.
func unsetEnv(env, names []string) []string {
	if len(names) == 0 || len(env) == 0 {
		return env
	}
	return slices.DeleteFunc(slices.Clone(env), func(e string) bool {
		k, _, _ := strings.Cut(e, "=")
		return slices.Contains(names, k)
	})
}

// unsetLabels is labels without the keys in names.
func unsetLabels(labels map[string]string, names []string) map[string]string {
	if len(names) == 0 || len(labels) == 0 {
		return labels
	}
	labels = maps.Clone(labels)
	for _, k := range names {
		delete(labels, k)
	}
	return labels
}

// layerAnnotations is the annotations of a descriptor of a layer the commit
// writes, nil when there are none.
func (o *CommitOptions) layerAnnotations() map[string]string {
	if len(o.LayerAnnotations) == 0 {
		return nil
	}
	return maps.Clone(o.LayerAnnotations)
}

// copyOptions are the options of the copy.Image that writes the image, and
// of those that write its AdditionalTags.
func (o *CommitOptions) copyOptions() *copy.Options {
	return &copy.Options{
		ReportWriter:                     o.ReportWriter,
		SourceCtx:                        o.SystemContext,
		DestinationCtx:                   destinationContext(*o),
		SignBy:                           o.SignBy,
		SignPassphrase:                   o.SignPassphrase,
		SignBySigstorePrivateKeyFile:     o.SignBySigstorePrivateKeyFile,
		SignSigstorePrivateKeyPassphrase: o.SignSigstorePrivateKeyPassphrase,
		SignIdentity:                     o.SignIdentity,
	}
}
