package bricklayer

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bricklayer/bricklayer/docker"
	"github.com/bricklayer/bricklayer/internal/dockerfile"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
)

// The setters below change the builder's image configs in memory only; call
// [Builder.Save] to keep the change for a later [OpenBuilder]. Each one
// updates the OCI config and the Docker config together, so a commit in
// either format carries it. Fields that only the Docker format has
// (Healthcheck, Shell, OnBuild, Domainname, Hostname, Comment) are kept in
// the Docker config; a commit in the OCI format leaves them out and logs a
// warning that names each.
//
// Setters never modify a slice, map or struct that the builder already
// holds: they store new ones, copied from what the caller passed. So a
// commit that took a snapshot of the state earlier is not disturbed, and a
// caller may reuse its arguments. Getters return copies too.

// SetEnv sets the environment variable k to v, replacing an earlier value
// in place or adding it at the end. A name that is empty or holds "=" cannot
// be written as KEY=VALUE: it is ignored, with a warning.
func (b *Builder) SetEnv(k, v string) {
	if k == "" || strings.Contains(k, "=") {
		logrus.Warnf("container %s: ignoring the environment variable name %q: it is empty or holds \"=\"", b.ContainerName(), k)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.setEnv(k, v)
}

// UnsetEnv removes the environment variable k, if set.
func (b *Builder) UnsetEnv(k string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.OCIConfig.Config.Env = withoutEnv(b.state.OCIConfig.Config.Env, k)
	b.state.editDocker(func(c *docker.Config) { c.Env = withoutEnv(c.Env, k) })
}

// ClearEnv removes every environment variable.
func (b *Builder) ClearEnv() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.OCIConfig.Config.Env = nil
	b.state.editDocker(func(c *docker.Config) { c.Env = nil })
}

// Env returns the environment as "KEY=VALUE" entries, in order.
func (b *Builder) Env() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.state.OCIConfig.Config.Env)
}

// SetCmd sets the default command, or the default arguments of the
// entrypoint when there is one; nil removes it.
func (b *Builder) SetCmd(cmd []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.setCmd(cmd)
}

// Cmd returns the default command.
func (b *Builder) Cmd() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.state.OCIConfig.Config.Cmd)
}

// SetEntrypoint sets the entrypoint; nil removes it. The command is left
// as it is (a Dockerfile ENTRYPOINT resets it; see [Builder.ApplyChanges]).
func (b *Builder) SetEntrypoint(ep []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.setEntrypoint(ep)
}

// Entrypoint returns the entrypoint.
func (b *Builder) Entrypoint() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.state.OCIConfig.Config.Entrypoint)
}

// SetUser sets the user, and optionally the group, that the container's
// processes run as: "name", "uid", "name:group", "uid:gid"; "" means root.
func (b *Builder) SetUser(user string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.setUser(user)
}

// User returns the user set by [Builder.SetUser].
func (b *Builder) User() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.OCIConfig.Config.User
}

// SetWorkDir sets the working directory of the container's processes,
// stored as given ("" means the runtime's default, /).
func (b *Builder) SetWorkDir(dir string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.setWorkDir(dir)
}

// WorkDir returns the working directory.
func (b *Builder) WorkDir() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.OCIConfig.Config.WorkingDir
}

// SetLabel sets the label k to v.
func (b *Builder) SetLabel(k, v string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.setLabel(k, v)
}

// UnsetLabel removes the label k, if set.
func (b *Builder) UnsetLabel(k string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.OCIConfig.Config.Labels = withoutKey(b.state.OCIConfig.Config.Labels, k)
	b.state.editDocker(func(c *docker.Config) { c.Labels = withoutKey(c.Labels, k) })
}

// ClearLabels removes every label.
func (b *Builder) ClearLabels() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.OCIConfig.Config.Labels = nil
	b.state.editDocker(func(c *docker.Config) { c.Labels = nil })
}

// Labels returns the labels.
func (b *Builder) Labels() map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.state.OCIConfig.Config.Labels)
}

// SetPort exposes the ports of spec: "80", "80/udp", or a range
// "8000-8010/tcp", which exposes each port in it. Ports are 1 to 65535 and
// the protocol is tcp (the default), udp or sctp, in any case. An invalid
// spec changes nothing and returns an error quoting it that wraps
// [ErrInvalidPort].
func (b *Builder) SetPort(spec string) error {
	ports, err := dockerfile.ParsePorts(spec)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.addPorts(ports)
	return nil
}

// UnsetPort stops exposing the ports of spec, read as [Builder.SetPort]
// reads it; ports not exposed are ignored. An invalid spec changes nothing
// and returns an error that wraps [ErrInvalidPort].
func (b *Builder) UnsetPort(spec string) error {
	ports, err := dockerfile.ParsePorts(spec)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	oc := maps.Clone(b.state.OCIConfig.Config.ExposedPorts)
	for _, p := range ports {
		delete(oc, p)
	}
	b.state.OCIConfig.Config.ExposedPorts = oc
	b.state.editDocker(func(c *docker.Config) {
		c.ExposedPorts = maps.Clone(c.ExposedPorts)
		for _, p := range ports {
			delete(c.ExposedPorts, docker.Port(p))
		}
	})
	return nil
}

// ClearPorts stops exposing any port.
func (b *Builder) ClearPorts() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.OCIConfig.Config.ExposedPorts = nil
	b.state.editDocker(func(c *docker.Config) { c.ExposedPorts = nil })
}

// Ports returns the exposed ports as "PORT/PROTO", by port number and then
// protocol.
func (b *Builder) Ports() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	ports := slices.Collect(maps.Keys(b.state.OCIConfig.Config.ExposedPorts))
	slices.SortFunc(ports, comparePorts)
	return ports
}

// comparePorts orders "PORT/PROTO" strings by port number, then protocol;
// strings that are not of that form sort after, as strings.
func comparePorts(a, b string) int {
	an, ap, _ := strings.Cut(a, "/")
	bn, bp, _ := strings.Cut(b, "/")
	ai, aerr := strconv.Atoi(an)
	bi, berr := strconv.Atoi(bn)
	switch {
	case aerr == nil && berr == nil:
		return cmp.Or(cmp.Compare(ai, bi), strings.Compare(ap, bp))
	case aerr == nil:
		return -1
	case berr == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// AddVolume marks path as a volume, a directory whose contents live outside
// the container's layers. An empty path is ignored.
func (b *Builder) AddVolume(path string) {
	if path == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.addVolume(path)
}

// RemoveVolume unmarks path as a volume, if it is one.
func (b *Builder) RemoveVolume(path string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.OCIConfig.Config.Volumes = withoutKey(b.state.OCIConfig.Config.Volumes, path)
	b.state.editDocker(func(c *docker.Config) { c.Volumes = withoutKey(c.Volumes, path) })
}

// ClearVolumes removes every volume.
func (b *Builder) ClearVolumes() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.OCIConfig.Config.Volumes = nil
	b.state.editDocker(func(c *docker.Config) { c.Volumes = nil })
}

// Volumes returns the volumes, sorted.
func (b *Builder) Volumes() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Sorted(maps.Keys(b.state.OCIConfig.Config.Volumes))
}

// SetStopSignal sets the signal that stops the container: a name with or
// without "SIG" in any case ("SIGTERM", "term", "SIGRTMIN+3") or a number
// from 1 to 64, stored as given; "" removes it. Anything else changes
// nothing and returns an error quoting it that wraps [ErrInvalidSignal].
func (b *Builder) SetStopSignal(sig string) error {
	if sig != "" {
		if err := dockerfile.CheckSignal(sig); err != nil {
			return err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.setStopSignal(sig)
	return nil
}

// StopSignal returns the stop signal.
func (b *Builder) StopSignal() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.OCIConfig.Config.StopSignal
}

// SetAuthor sets the image's author ("name <email>").
func (b *Builder) SetAuthor(author string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.setAuthor(author)
}

// SetMaintainer is [Builder.SetAuthor], named after the Dockerfile
// instruction.
func (b *Builder) SetMaintainer(maintainer string) { b.SetAuthor(maintainer) }

// Author returns the image's author.
func (b *Builder) Author() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.OCIConfig.Author
}

// SetComment sets the image's comment. Only the Docker format has one: a
// commit in the OCI format leaves it out, with a warning. For the comment of
// the history entry a commit adds, see [Builder.SetHistoryComment].
func (b *Builder) SetComment(comment string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.DockerConfig.Comment = comment
}

// Comment returns the image's comment.
func (b *Builder) Comment() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.DockerConfig.Comment
}

// SetOS sets the operating system the image runs on, as GOOS spells it.
func (b *Builder) SetOS(os string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.OCIConfig.OS = os
	b.state.DockerConfig.OS = os
}

// OS returns the image's operating system.
func (b *Builder) OS() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.OCIConfig.OS
}

// SetArchitecture sets the CPU architecture the image runs on, as GOARCH
// spells it.
func (b *Builder) SetArchitecture(arch string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.OCIConfig.Architecture = arch
	b.state.DockerConfig.Architecture = arch
}

// Architecture returns the image's architecture.
func (b *Builder) Architecture() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.OCIConfig.Architecture
}

// SetVariant sets the architecture's variant ("v7" for arm/v7, "v8").
func (b *Builder) SetVariant(variant string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.OCIConfig.Variant = variant
	b.state.DockerConfig.Variant = variant
}

// Variant returns the architecture's variant.
func (b *Builder) Variant() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.OCIConfig.Variant
}

// SetOSVersion sets the version of the operating system the image needs
// (used for Windows images: "10.0.17763.1879").
func (b *Builder) SetOSVersion(version string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.OCIConfig.OSVersion = version
	b.state.DockerConfig.OSVersion = version
}

// OSVersion returns the operating system's version.
func (b *Builder) OSVersion() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.OCIConfig.OSVersion
}

// SetOSFeatures sets the operating system features the image needs
// ("win32k"); nil removes them.
func (b *Builder) SetOSFeatures(features []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.OCIConfig.OSFeatures = slices.Clone(features)
	b.state.DockerConfig.OSFeatures = slices.Clone(features)
}

// OSFeatures returns the operating system features.
func (b *Builder) OSFeatures() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.state.OCIConfig.OSFeatures)
}

// SetCreatedBy sets the created_by of the history entry a commit adds for
// the container's layer; [CommitOptions].CreatedBy overrides it.
func (b *Builder) SetCreatedBy(createdBy string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.CreatedBy = createdBy
}

// CreatedBy returns what [Builder.SetCreatedBy] set.
func (b *Builder) CreatedBy() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.CreatedBy
}

// SetHistoryComment sets the comment of the history entry a commit adds for
// the container's layer; [CommitOptions].HistoryComment overrides it.
func (b *Builder) SetHistoryComment(comment string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.HistoryNote = comment
}

// HistoryComment returns what [Builder.SetHistoryComment] set.
func (b *Builder) HistoryComment() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.HistoryNote
}

// SetAnnotation sets the annotation k of the image's manifest to v. Only
// OCI manifests carry annotations; a Docker v2s2 manifest has none.
func (b *Builder) SetAnnotation(k, v string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.Annotations = withKey(b.state.Annotations, k, v)
}

// UnsetAnnotation removes the manifest annotation k, if set.
func (b *Builder) UnsetAnnotation(k string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.Annotations = withoutKey(b.state.Annotations, k)
}

// ClearAnnotations removes every manifest annotation.
func (b *Builder) ClearAnnotations() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.Annotations = nil
}

// Annotations returns the manifest annotations.
func (b *Builder) Annotations() map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.state.Annotations)
}

// SetHealthcheck sets the container's health check; nil removes it, which
// inherits none, while Test ["NONE"] disables a check a later image would
// otherwise inherit. Docker format only: a commit in the OCI format leaves
// it out, with a warning.
func (b *Builder) SetHealthcheck(h *docker.HealthConfig) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.setHealthcheck(h)
}

// Healthcheck returns the health check, nil when there is none.
func (b *Builder) Healthcheck() *docker.HealthConfig {
	b.mu.Lock()
	defer b.mu.Unlock()
	return cloneHealth(b.dockerRunConfig().Healthcheck)
}

// SetShell sets the shell that shell-form commands run with, ["/bin/sh",
// "-c"] when none is set; nil removes it. Docker format only: a commit in
// the OCI format leaves it out, with a warning.
func (b *Builder) SetShell(shell []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.setShell(shell)
}

// Shell returns the shell set by [Builder.SetShell].
func (b *Builder) Shell() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.dockerRunConfig().Shell)
}

// AddOnBuild adds a Dockerfile instruction that a build from the image
// runs first ("RUN make"). Docker format only: a commit in the OCI format
// leaves it out, with a warning. [Builder.ApplyChange] with "ONBUILD …"
// checks the instruction; this does not.
func (b *Builder) AddOnBuild(instruction string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.addOnBuild(instruction)
}

// ClearOnBuild removes every ONBUILD instruction.
func (b *Builder) ClearOnBuild() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.editDocker(func(c *docker.Config) { c.OnBuild = nil })
}

// OnBuild returns the ONBUILD instructions, in order.
func (b *Builder) OnBuild() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.dockerRunConfig().OnBuild)
}

// SetDomainname sets the container's NIS domain name. Docker format only: a
// commit in the OCI format leaves it out, with a warning.
func (b *Builder) SetDomainname(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.editDocker(func(c *docker.Config) { c.Domainname = name })
}

// Domainname returns the domain name.
func (b *Builder) Domainname() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dockerRunConfig().Domainname
}

// SetHostname sets the container's host name. Docker format only: a commit
// in the OCI format leaves it out, with a warning.
func (b *Builder) SetHostname(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state.editDocker(func(c *docker.Config) { c.Hostname = name })
}

// Hostname returns the host name.
func (b *Builder) Hostname() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dockerRunConfig().Hostname
}

// OCIConfig returns a deep copy of the builder's OCI image config. Its
// created time, rootfs and history are the base image's; a commit sets its
// own.
func (b *Builder) OCIConfig() v1.Image {
	b.mu.Lock()
	defer b.mu.Unlock()
	return cloneOCIImage(b.state.OCIConfig)
}

// DockerConfig returns a deep copy of the builder's Docker image config,
// with the base image's created time, rootfs and history.
func (b *Builder) DockerConfig() docker.V2Image {
	b.mu.Lock()
	defer b.mu.Unlock()
	return cloneDockerImage(b.state.DockerConfig)
}

// dockerOnlyFields names the fields set in state that only the Docker
// format can carry, in a fixed order; an OCI config goes without them.
func dockerOnlyFields(state *builderState) []string {
	var fields []string
	if c := state.DockerConfig.Config; c != nil {
		if c.Healthcheck != nil {
			fields = append(fields, "Healthcheck")
		}
		if len(c.Shell) > 0 {
			fields = append(fields, "Shell")
		}
		if len(c.OnBuild) > 0 {
			fields = append(fields, "OnBuild")
		}
		if c.Domainname != "" {
			fields = append(fields, "Domainname")
		}
		if c.Hostname != "" {
			fields = append(fields, "Hostname")
		}
	}
	if state.DockerConfig.Comment != "" {
		fields = append(fields, "Comment")
	}
	return fields
}

// dockerRunConfig is the Docker run config, never nil; the caller must not
// modify it. b.mu must be held.
func (b *Builder) dockerRunConfig() *docker.Config {
	if b.state.DockerConfig.Config == nil {
		return &docker.Config{}
	}
	return b.state.DockerConfig.Config
}

// editDocker applies edit to a copy of the Docker run config and stores the
// copy, so a snapshot that shares the old one is not disturbed. edit must
// replace, not modify, the slices and maps it changes.
func (s *builderState) editDocker(edit func(c *docker.Config)) {
	var c docker.Config
	if s.DockerConfig.Config != nil {
		c = *s.DockerConfig.Config
	}
	edit(&c)
	s.DockerConfig.Config = &c
}

func (s *builderState) setEnv(k, v string) {
	s.OCIConfig.Config.Env = withEnv(s.OCIConfig.Config.Env, k, v)
	s.editDocker(func(c *docker.Config) { c.Env = withEnv(c.Env, k, v) })
}

func (s *builderState) setCmd(cmd []string) {
	s.OCIConfig.Config.Cmd = slices.Clone(cmd)
	s.editDocker(func(c *docker.Config) { c.Cmd = slices.Clone(cmd) })
}

func (s *builderState) setEntrypoint(ep []string) {
	s.OCIConfig.Config.Entrypoint = slices.Clone(ep)
	s.editDocker(func(c *docker.Config) { c.Entrypoint = slices.Clone(ep) })
}

func (s *builderState) setUser(user string) {
	s.OCIConfig.Config.User = user
	s.editDocker(func(c *docker.Config) { c.User = user })
}

func (s *builderState) setWorkDir(dir string) {
	s.OCIConfig.Config.WorkingDir = dir
	s.editDocker(func(c *docker.Config) { c.WorkingDir = dir })
}

func (s *builderState) setLabel(k, v string) {
	s.OCIConfig.Config.Labels = withKey(s.OCIConfig.Config.Labels, k, v)
	s.editDocker(func(c *docker.Config) { c.Labels = withKey(c.Labels, k, v) })
}

func (s *builderState) addPorts(ports []string) {
	oc := maps.Clone(s.OCIConfig.Config.ExposedPorts)
	if oc == nil {
		oc = map[string]struct{}{}
	}
	for _, p := range ports {
		oc[p] = struct{}{}
	}
	s.OCIConfig.Config.ExposedPorts = oc
	s.editDocker(func(c *docker.Config) {
		dc := maps.Clone(c.ExposedPorts)
		if dc == nil {
			dc = docker.PortSet{}
		}
		for _, p := range ports {
			dc[docker.Port(p)] = struct{}{}
		}
		c.ExposedPorts = dc
	})
}

func (s *builderState) addVolume(path string) {
	s.OCIConfig.Config.Volumes = withKey(s.OCIConfig.Config.Volumes, path, struct{}{})
	s.editDocker(func(c *docker.Config) { c.Volumes = withKey(c.Volumes, path, struct{}{}) })
}

func (s *builderState) setStopSignal(sig string) {
	s.OCIConfig.Config.StopSignal = sig
	s.editDocker(func(c *docker.Config) { c.StopSignal = sig })
}

func (s *builderState) setAuthor(author string) {
	s.OCIConfig.Author = author
	s.DockerConfig.Author = author
}

func (s *builderState) setHealthcheck(h *docker.HealthConfig) {
	s.editDocker(func(c *docker.Config) { c.Healthcheck = cloneHealth(h) })
}

func (s *builderState) setShell(shell []string) {
	s.editDocker(func(c *docker.Config) { c.Shell = slices.Clone(shell) })
}

func (s *builderState) addOnBuild(instruction string) {
	s.editDocker(func(c *docker.Config) { c.OnBuild = append(slices.Clone(c.OnBuild), instruction) })
}

// envKey is the name of a "KEY=VALUE" entry.
func envKey(e string) string {
	k, _, _ := strings.Cut(e, "=")
	return k
}

// withEnv returns a new list with k set to v: in place of the first entry
// for k, whose later duplicates are dropped, or at the end.
func withEnv(env []string, k, v string) []string {
	out := make([]string, 0, len(env)+1)
	done := false
	for _, e := range env {
		if envKey(e) != k {
			out = append(out, e)
		} else if !done {
			out = append(out, k+"="+v)
			done = true
		}
	}
	if !done {
		out = append(out, k+"="+v)
	}
	return out
}

// withoutEnv returns a new list without the entries for k.
func withoutEnv(env []string, k string) []string {
	if !slices.ContainsFunc(env, func(e string) bool { return envKey(e) == k }) {
		return env
	}
	return slices.DeleteFunc(slices.Clone(env), func(e string) bool { return envKey(e) == k })
}

// withKey returns a copy of m with k set to v.
func withKey[K comparable, V any](m map[K]V, k K, v V) map[K]V {
	out := maps.Clone(m)
	if out == nil {
		out = map[K]V{}
	}
	out[k] = v
	return out
}

// withoutKey returns m without k: m itself when k is not in it, else a copy.
func withoutKey[K comparable, V any](m map[K]V, k K) map[K]V {
	if _, ok := m[k]; !ok {
		return m
	}
	out := maps.Clone(m)
	delete(out, k)
	return out
}

func cloneHealth(h *docker.HealthConfig) *docker.HealthConfig {
	if h == nil {
		return nil
	}
	c := *h
	c.Test = slices.Clone(h.Test)
	return &c
}

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// cloneOCIImage is a deep copy of an OCI config.
func cloneOCIImage(img v1.Image) v1.Image {
	c := img
	c.Created = cloneTime(img.Created)
	c.OSFeatures = slices.Clone(img.OSFeatures)
	cfg := &c.Config
	cfg.ExposedPorts = maps.Clone(cfg.ExposedPorts)
	cfg.Env = slices.Clone(cfg.Env)
	cfg.Entrypoint = slices.Clone(cfg.Entrypoint)
	cfg.Cmd = slices.Clone(cfg.Cmd)
	cfg.Volumes = maps.Clone(cfg.Volumes)
	cfg.Labels = maps.Clone(cfg.Labels)
	c.RootFS.DiffIDs = slices.Clone(img.RootFS.DiffIDs)
	c.History = slices.Clone(img.History)
	for i := range c.History {
		c.History[i].Created = cloneTime(c.History[i].Created)
	}
	return c
}

// cloneDockerRun is a deep copy of a Docker run config.
func cloneDockerRun(cfg docker.Config) docker.Config {
	c := cfg
	c.ExposedPorts = maps.Clone(cfg.ExposedPorts)
	c.Env = slices.Clone(cfg.Env)
	c.Cmd = slices.Clone(cfg.Cmd)
	c.Healthcheck = cloneHealth(cfg.Healthcheck)
	c.Volumes = maps.Clone(cfg.Volumes)
	c.Entrypoint = slices.Clone(cfg.Entrypoint)
	c.OnBuild = slices.Clone(cfg.OnBuild)
	c.Labels = maps.Clone(cfg.Labels)
	c.Shell = slices.Clone(cfg.Shell)
	if cfg.StopTimeout != nil {
		t := *cfg.StopTimeout
		c.StopTimeout = &t
	}
	return c
}

// cloneDockerImage is a deep copy of a Docker config.
func cloneDockerImage(img docker.V2Image) docker.V2Image {
	c := img
	c.ContainerConfig = cloneDockerRun(img.ContainerConfig)
	if img.Config != nil {
		cfg := cloneDockerRun(*img.Config)
		c.Config = &cfg
	}
	if img.RootFS != nil {
		r := *img.RootFS
		r.DiffIDs = slices.Clone(img.RootFS.DiffIDs)
		c.RootFS = &r
	}
	c.History = slices.Clone(img.History)
	c.OSFeatures = slices.Clone(img.OSFeatures)
	return c
}
