package bricklayer

// TEMPORARY (cli branch only): minimal stand-ins for the config API and the
// Add/Copy API that the config and content helpers are writing on their own
// branches, so that cmd/bricklayer builds here. The lead must DELETE THIS
// FILE when merging those branches. The setters touch only the OCI config
// and re-derive the Docker one; ApplyChange, Add and Copy are not
// implemented.

import (
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/bricklayer/bricklayer/docker"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// errStub is returned by the stand-ins that do nothing.
var errStub = errors.New("not implemented on this branch (temporary stub)")

// ApplyChange is a stub.
func (b *Builder) ApplyChange(instruction string) error { return errStub }

func (b *Builder) stubEdit(f func(oc *v1.Image, dc *docker.Config)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f(&b.state.OCIConfig, nil)
	old := b.state.DockerConfig.Config
	b.state.DockerConfig = dockerFromOCI(b.state.OCIConfig)
	if old != nil {
		b.state.DockerConfig.Config.Hostname = old.Hostname
		b.state.DockerConfig.Config.Domainname = old.Domainname
		b.state.DockerConfig.Config.Shell = old.Shell
		b.state.DockerConfig.Config.OnBuild = old.OnBuild
	}
	f(&v1.Image{}, b.state.DockerConfig.Config)
}

func (b *Builder) SetEnv(k, v string) {
	b.UnsetEnv(k)
	b.stubEdit(func(oc *v1.Image, _ *docker.Config) { oc.Config.Env = append(oc.Config.Env, k+"="+v) })
}
func (b *Builder) UnsetEnv(k string) {
	b.stubEdit(func(oc *v1.Image, _ *docker.Config) {
		oc.Config.Env = slices.DeleteFunc(oc.Config.Env, func(e string) bool { return strings.HasPrefix(e, k+"=") })
	})
}
func (b *Builder) SetCmd(c []string) {
	b.stubEdit(func(oc *v1.Image, _ *docker.Config) { oc.Config.Cmd = slices.Clone(c) })
}
func (b *Builder) SetEntrypoint(c []string) {
	b.stubEdit(func(oc *v1.Image, _ *docker.Config) { oc.Config.Entrypoint = slices.Clone(c) })
}
func (b *Builder) SetUser(u string) {
	b.stubEdit(func(oc *v1.Image, _ *docker.Config) { oc.Config.User = u })
}
func (b *Builder) SetWorkDir(d string) {
	b.stubEdit(func(oc *v1.Image, _ *docker.Config) { oc.Config.WorkingDir = d })
}
func (b *Builder) SetLabel(k, v string) {
	b.stubEdit(func(oc *v1.Image, _ *docker.Config) {
		if oc.Config.Labels == nil {
			oc.Config.Labels = map[string]string{}
		}
		oc.Config.Labels[k] = v
	})
}
func (b *Builder) UnsetLabel(k string) {
	b.stubEdit(func(oc *v1.Image, _ *docker.Config) { delete(oc.Config.Labels, k) })
}
func (b *Builder) SetPort(p string) error {
	if !strings.Contains(p, "/") {
		p += "/tcp"
	}
	b.stubEdit(func(oc *v1.Image, _ *docker.Config) {
		if oc.Config.ExposedPorts == nil {
			oc.Config.ExposedPorts = map[string]struct{}{}
		}
		oc.Config.ExposedPorts[p] = struct{}{}
	})
	return nil
}
func (b *Builder) UnsetPort(p string) {
	if !strings.Contains(p, "/") {
		p += "/tcp"
	}
	b.stubEdit(func(oc *v1.Image, _ *docker.Config) { delete(oc.Config.ExposedPorts, p) })
}
func (b *Builder) AddVolume(v string) {
	b.stubEdit(func(oc *v1.Image, _ *docker.Config) {
		if oc.Config.Volumes == nil {
			oc.Config.Volumes = map[string]struct{}{}
		}
		oc.Config.Volumes[v] = struct{}{}
	})
}
func (b *Builder) RemoveVolume(v string) {
	b.stubEdit(func(oc *v1.Image, _ *docker.Config) { delete(oc.Config.Volumes, v) })
}
func (b *Builder) SetStopSignal(s string) error {
	b.stubEdit(func(oc *v1.Image, _ *docker.Config) { oc.Config.StopSignal = s })
	return nil
}
func (b *Builder) SetAuthor(a string) {
	b.stubEdit(func(oc *v1.Image, _ *docker.Config) { oc.Author = a })
}
func (b *Builder) SetComment(c string) {
	b.stubEdit(func(_ *v1.Image, dc *docker.Config) {})
	b.mu.Lock()
	b.state.DockerConfig.Comment = c
	b.mu.Unlock()
}
func (b *Builder) SetOS(s string) {
	b.stubEdit(func(oc *v1.Image, _ *docker.Config) { oc.OS = s })
}
func (b *Builder) SetArchitecture(s string) {
	b.stubEdit(func(oc *v1.Image, _ *docker.Config) { oc.Architecture = s })
}
func (b *Builder) SetVariant(s string) {
	b.stubEdit(func(oc *v1.Image, _ *docker.Config) { oc.Variant = s })
}
func (b *Builder) SetCreatedBy(s string) {
	b.mu.Lock()
	b.state.CreatedBy = s
	b.mu.Unlock()
}
func (b *Builder) SetHistoryComment(s string) {
	b.mu.Lock()
	b.state.HistoryNote = s
	b.mu.Unlock()
}
func (b *Builder) SetAnnotation(k, v string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state.Annotations == nil {
		b.state.Annotations = map[string]string{}
	}
	b.state.Annotations[k] = v
}
func (b *Builder) UnsetAnnotation(k string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.state.Annotations, k)
}
func (b *Builder) Annotations() map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.state.Annotations)
}
func (b *Builder) SetHostname(s string) {
	b.stubEdit(func(_ *v1.Image, dc *docker.Config) {
		if dc != nil {
			dc.Hostname = s
		}
	})
}
func (b *Builder) SetDomainname(s string) {
	b.stubEdit(func(_ *v1.Image, dc *docker.Config) {
		if dc != nil {
			dc.Domainname = s
		}
	})
}
func (b *Builder) SetShell(s []string) {
	b.stubEdit(func(_ *v1.Image, dc *docker.Config) {
		if dc != nil {
			dc.Shell = slices.Clone(s)
		}
	})
}
func (b *Builder) AddOnBuild(s string) {
	b.stubEdit(func(_ *v1.Image, dc *docker.Config) {
		if dc != nil {
			dc.OnBuild = append(dc.OnBuild, s)
		}
	})
}
func (b *Builder) OCIConfig() v1.Image {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.OCIConfig // shallow: stub only
}
func (b *Builder) DockerConfig() docker.V2Image {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.DockerConfig // shallow: stub only
}
