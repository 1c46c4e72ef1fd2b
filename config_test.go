package bricklayer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bricklayer/bricklayer/docker"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"go.podman.io/image/v5/directory"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/oci/layout"
	is "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
)

// committed is what two commits of one builder wrote, read back through
// containers/image: one in the OCI format to an oci: layout, one in the
// Docker v2s2 format to a dir: directory.
type committed struct {
	oci         v1.Image       // the OCI config blob
	ociRaw      map[string]any // the same, as plain JSON
	ociManifest v1.Manifest
	docker      docker.V2Image // the Docker config blob
	dockerRaw   map[string]any
	dockerMIME  string    // the Docker commit's manifest type
	dockerAsOCI *v1.Image // c/image's OCI view of the Docker image
}

// historyTime is the time the tests' commits stamp.
var historyTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// commitBoth commits b in both formats and reads the results back.
func commitBoth(t *testing.T, b *Builder) committed {
	t.Helper()
	ctx := context.Background()
	var c committed
	dir := t.TempDir()

	ociRef, err := layout.ParseReference(filepath.Join(dir, "oci") + ":latest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx, ociRef, CommitOptions{Compression: CompressionNone, HistoryTimestamp: &historyTime}); err != nil {
		t.Fatalf("committing as OCI: %v", err)
	}
	blob, mblob, mime := readConfigAndManifest(t, ociRef)
	if mime != v1.MediaTypeImageManifest {
		t.Fatalf("OCI commit wrote a %s manifest", mime)
	}
	mustUnmarshal(t, blob, &c.oci)
	mustUnmarshal(t, blob, &c.ociRaw)
	mustUnmarshal(t, mblob, &c.ociManifest)

	dockerRef, err := directory.NewReference(filepath.Join(dir, "docker"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx, dockerRef, CommitOptions{ManifestType: docker.V2S2MediaTypeManifest, Compression: CompressionNone, HistoryTimestamp: &historyTime}); err != nil {
		t.Fatalf("committing as Docker: %v", err)
	}
	blob, _, c.dockerMIME = readConfigAndManifest(t, dockerRef)
	if c.dockerMIME != manifest.DockerV2Schema2MediaType {
		t.Fatalf("Docker commit wrote a %s manifest", c.dockerMIME)
	}
	mustUnmarshal(t, blob, &c.docker)
	mustUnmarshal(t, blob, &c.dockerRaw)
	img, err := dockerRef.NewImage(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if c.dockerAsOCI, err = img.OCIConfig(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

// readConfigAndManifest returns the config blob, the manifest and its type.
func readConfigAndManifest(t *testing.T, ref types.ImageReference) ([]byte, []byte, string) {
	t.Helper()
	ctx := context.Background()
	img, err := ref.NewImage(ctx, nil)
	if err != nil {
		t.Fatalf("opening %s: %v", ref.StringWithinTransport(), err)
	}
	defer img.Close()
	blob, err := img.ConfigBlob(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, mime, err := img.Manifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return blob, m, mime
}

func mustUnmarshal(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("parsing %s: %v", data, err)
	}
}

// runConfig is the Docker run config of c, failing when there is none.
func (c committed) runConfig(t *testing.T) *docker.Config {
	t.Helper()
	if c.docker.Config == nil {
		t.Fatal("the Docker config has no config")
	}
	return c.docker.Config
}

func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// ociRunKeys are the keys of the OCI config's "config" object.
func (c committed) ociRunKeys() []string {
	m, _ := c.ociRaw["config"].(map[string]any)
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func keySet[K comparable](keys ...K) map[K]struct{} {
	m := map[K]struct{}{}
	for _, k := range keys {
		m[k] = struct{}{}
	}
	return m
}

func portSet(ports ...string) docker.PortSet {
	m := docker.PortSet{}
	for _, p := range ports {
		m[docker.Port(p)] = struct{}{}
	}
	return m
}

func lastHistory(t *testing.T, c committed) (v1.History, docker.V2S2History) {
	t.Helper()
	if len(c.oci.History) == 0 || len(c.docker.History) == 0 {
		t.Fatalf("no history: OCI %v, Docker %v", c.oci.History, c.docker.History)
	}
	return c.oci.History[len(c.oci.History)-1], c.docker.History[len(c.docker.History)-1]
}

// configCase sets something on a fresh scratch builder and checks the
// committed configs.
type configCase struct {
	name  string
	set   func(t *testing.T, b *Builder)
	check func(t *testing.T, c committed)
}

var configCases = []configCase{
	{"SetEnv", func(t *testing.T, b *Builder) {
		b.SetEnv("A", "1")
		b.SetEnv("B", "x=y")
		b.SetEnv("A", "3")
	}, func(t *testing.T, c committed) {
		want := []string{"A=3", "B=x=y"}
		equal(t, "OCI Env", c.oci.Config.Env, want)
		equal(t, "Docker Env", c.runConfig(t).Env, want)
		equal(t, "Docker Env read by c/image", c.dockerAsOCI.Config.Env, want)
	}},
	{"SetEnv ignores bad names", func(t *testing.T, b *Builder) {
		b.SetEnv("", "x")
		b.SetEnv("A=B", "x")
		b.SetEnv("OK", "")
	}, func(t *testing.T, c committed) {
		equal(t, "OCI Env", c.oci.Config.Env, []string{"OK="})
		equal(t, "Docker Env", c.runConfig(t).Env, []string{"OK="})
	}},
	{"UnsetEnv", func(t *testing.T, b *Builder) {
		b.SetEnv("A", "1")
		b.SetEnv("B", "2")
		b.UnsetEnv("A")
		b.UnsetEnv("NOT_SET")
	}, func(t *testing.T, c committed) {
		equal(t, "OCI Env", c.oci.Config.Env, []string{"B=2"})
		equal(t, "Docker Env", c.runConfig(t).Env, []string{"B=2"})
	}},
	{"ClearEnv", func(t *testing.T, b *Builder) {
		b.SetEnv("A", "1")
		b.ClearEnv()
		b.SetEnv("C", "3")
	}, func(t *testing.T, c committed) {
		equal(t, "OCI Env", c.oci.Config.Env, []string{"C=3"})
		equal(t, "Docker Env", c.runConfig(t).Env, []string{"C=3"})
	}},
	{"SetCmd", func(t *testing.T, b *Builder) {
		b.SetCmd([]string{"/bin/app", "--flag"})
	}, func(t *testing.T, c committed) {
		equal(t, "OCI Cmd", c.oci.Config.Cmd, []string{"/bin/app", "--flag"})
		equal(t, "Docker Cmd", c.runConfig(t).Cmd, []string{"/bin/app", "--flag"})
	}},
	{"SetEntrypoint", func(t *testing.T, b *Builder) {
		b.SetCmd([]string{"serve"})
		b.SetEntrypoint([]string{"/init", "--"})
	}, func(t *testing.T, c committed) {
		equal(t, "OCI Entrypoint", c.oci.Config.Entrypoint, []string{"/init", "--"})
		equal(t, "Docker Entrypoint", c.runConfig(t).Entrypoint, []string{"/init", "--"})
		equal(t, "OCI Cmd", c.oci.Config.Cmd, []string{"serve"})
		equal(t, "Docker Cmd", c.runConfig(t).Cmd, []string{"serve"})
	}},
	{"SetUser", func(t *testing.T, b *Builder) { b.SetUser("1000:1000") }, func(t *testing.T, c committed) {
		equal(t, "OCI User", c.oci.Config.User, "1000:1000")
		equal(t, "Docker User", c.runConfig(t).User, "1000:1000")
	}},
	{"SetWorkDir", func(t *testing.T, b *Builder) { b.SetWorkDir("/srv/app") }, func(t *testing.T, c committed) {
		equal(t, "OCI WorkingDir", c.oci.Config.WorkingDir, "/srv/app")
		equal(t, "Docker WorkingDir", c.runConfig(t).WorkingDir, "/srv/app")
	}},
	{"SetLabel", func(t *testing.T, b *Builder) {
		b.SetLabel("a", "1")
		b.SetLabel("b", "")
		b.SetLabel("a", "3")
	}, func(t *testing.T, c committed) {
		want := map[string]string{"a": "3", "b": ""}
		equal(t, "OCI Labels", c.oci.Config.Labels, want)
		equal(t, "Docker Labels", c.runConfig(t).Labels, want)
	}},
	{"UnsetLabel", func(t *testing.T, b *Builder) {
		b.SetLabel("a", "1")
		b.SetLabel("b", "2")
		b.UnsetLabel("a")
	}, func(t *testing.T, c committed) {
		equal(t, "OCI Labels", c.oci.Config.Labels, map[string]string{"b": "2"})
		equal(t, "Docker Labels", c.runConfig(t).Labels, map[string]string{"b": "2"})
	}},
	{"ClearLabels", func(t *testing.T, b *Builder) {
		b.SetLabel("a", "1")
		b.ClearLabels()
		b.SetLabel("c", "3")
	}, func(t *testing.T, c committed) {
		equal(t, "OCI Labels", c.oci.Config.Labels, map[string]string{"c": "3"})
		equal(t, "Docker Labels", c.runConfig(t).Labels, map[string]string{"c": "3"})
	}},
	{"SetPort", func(t *testing.T, b *Builder) {
		for _, p := range []string{"80", "53/udp", "8000-8002/tcp", "9/SCTP"} {
			if err := b.SetPort(p); err != nil {
				t.Fatal(err)
			}
		}
	}, func(t *testing.T, c committed) {
		want := []string{"80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp", "9/sctp"}
		equal(t, "OCI ExposedPorts", c.oci.Config.ExposedPorts, keySet(want...))
		equal(t, "Docker ExposedPorts", c.runConfig(t).ExposedPorts, portSet(want...))
		equal(t, "Docker ExposedPorts read by c/image", c.dockerAsOCI.Config.ExposedPorts, keySet(want...))
	}},
	{"UnsetPort", func(t *testing.T, b *Builder) {
		for _, p := range []string{"80", "81", "90-92/udp"} {
			if err := b.SetPort(p); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range []string{"80/tcp", "91-92/udp", "7"} {
			if err := b.UnsetPort(p); err != nil {
				t.Fatal(err)
			}
		}
	}, func(t *testing.T, c committed) {
		equal(t, "OCI ExposedPorts", c.oci.Config.ExposedPorts, keySet("81/tcp", "90/udp"))
		equal(t, "Docker ExposedPorts", c.runConfig(t).ExposedPorts, portSet("81/tcp", "90/udp"))
	}},
	{"ClearPorts", func(t *testing.T, b *Builder) {
		if err := b.SetPort("80"); err != nil {
			t.Fatal(err)
		}
		b.ClearPorts()
		if err := b.SetPort("443"); err != nil {
			t.Fatal(err)
		}
	}, func(t *testing.T, c committed) {
		equal(t, "OCI ExposedPorts", c.oci.Config.ExposedPorts, keySet("443/tcp"))
		equal(t, "Docker ExposedPorts", c.runConfig(t).ExposedPorts, portSet("443/tcp"))
	}},
	{"AddVolume", func(t *testing.T, b *Builder) {
		b.AddVolume("/data")
		b.AddVolume("/var/log")
		b.AddVolume("/data")
	}, func(t *testing.T, c committed) {
		equal(t, "OCI Volumes", c.oci.Config.Volumes, keySet("/data", "/var/log"))
		equal(t, "Docker Volumes", c.runConfig(t).Volumes, keySet("/data", "/var/log"))
	}},
	{"RemoveVolume", func(t *testing.T, b *Builder) {
		b.AddVolume("/a")
		b.AddVolume("/b")
		b.RemoveVolume("/a")
	}, func(t *testing.T, c committed) {
		equal(t, "OCI Volumes", c.oci.Config.Volumes, keySet("/b"))
		equal(t, "Docker Volumes", c.runConfig(t).Volumes, keySet("/b"))
	}},
	{"ClearVolumes", func(t *testing.T, b *Builder) {
		b.AddVolume("/a")
		b.ClearVolumes()
		b.AddVolume("/c")
	}, func(t *testing.T, c committed) {
		equal(t, "OCI Volumes", c.oci.Config.Volumes, keySet("/c"))
		equal(t, "Docker Volumes", c.runConfig(t).Volumes, keySet("/c"))
	}},
	{"SetStopSignal", func(t *testing.T, b *Builder) {
		if err := b.SetStopSignal("SIGINT"); err != nil {
			t.Fatal(err)
		}
	}, func(t *testing.T, c committed) {
		equal(t, "OCI StopSignal", c.oci.Config.StopSignal, "SIGINT")
		equal(t, "Docker StopSignal", c.runConfig(t).StopSignal, "SIGINT")
	}},
	{"SetAuthor", func(t *testing.T, b *Builder) { b.SetAuthor("Jane <jane@example.com>") }, func(t *testing.T, c committed) {
		equal(t, "OCI author", c.oci.Author, "Jane <jane@example.com>")
		equal(t, "Docker author", c.docker.Author, "Jane <jane@example.com>")
		oh, dh := lastHistory(t, c)
		equal(t, "OCI history author", oh.Author, "Jane <jane@example.com>")
		equal(t, "Docker history author", dh.Author, "Jane <jane@example.com>")
	}},
	{"SetMaintainer", func(t *testing.T, b *Builder) { b.SetMaintainer("Max") }, func(t *testing.T, c committed) {
		equal(t, "OCI author", c.oci.Author, "Max")
		equal(t, "Docker author", c.docker.Author, "Max")
	}},
	{"SetComment", func(t *testing.T, b *Builder) { b.SetComment("built by hand") }, func(t *testing.T, c committed) {
		equal(t, "Docker comment", c.docker.Comment, "built by hand")
		if _, ok := c.ociRaw["comment"]; ok {
			t.Errorf("the OCI config has a comment: %v", c.ociRaw)
		}
	}},
	{"SetOS", func(t *testing.T, b *Builder) { b.SetOS("freebsd") }, func(t *testing.T, c committed) {
		equal(t, "OCI os", c.oci.OS, "freebsd")
		equal(t, "Docker os", c.docker.OS, "freebsd")
	}},
	{"SetArchitecture", func(t *testing.T, b *Builder) { b.SetArchitecture("riscv64") }, func(t *testing.T, c committed) {
		equal(t, "OCI architecture", c.oci.Architecture, "riscv64")
		equal(t, "Docker architecture", c.docker.Architecture, "riscv64")
	}},
	{"SetVariant", func(t *testing.T, b *Builder) {
		b.SetArchitecture("arm")
		b.SetVariant("v7")
	}, func(t *testing.T, c committed) {
		equal(t, "OCI variant", c.oci.Variant, "v7")
		equal(t, "Docker variant", c.docker.Variant, "v7")
	}},
	{"SetOSVersion", func(t *testing.T, b *Builder) { b.SetOSVersion("10.0.17763.1879") }, func(t *testing.T, c committed) {
		equal(t, "OCI os.version", c.oci.OSVersion, "10.0.17763.1879")
		equal(t, "Docker os.version", c.docker.OSVersion, "10.0.17763.1879")
	}},
	{"SetOSFeatures", func(t *testing.T, b *Builder) { b.SetOSFeatures([]string{"win32k", "other"}) }, func(t *testing.T, c committed) {
		equal(t, "OCI os.features", c.oci.OSFeatures, []string{"win32k", "other"})
		equal(t, "Docker os.features", c.docker.OSFeatures, []string{"win32k", "other"})
	}},
	{"SetCreatedBy", func(t *testing.T, b *Builder) { b.SetCreatedBy("bricklayer test") }, func(t *testing.T, c committed) {
		oh, dh := lastHistory(t, c)
		equal(t, "OCI created_by", oh.CreatedBy, "bricklayer test")
		equal(t, "Docker created_by", dh.CreatedBy, "bricklayer test")
	}},
	{"SetHistoryComment", func(t *testing.T, b *Builder) { b.SetHistoryComment("step one") }, func(t *testing.T, c committed) {
		oh, dh := lastHistory(t, c)
		equal(t, "OCI history comment", oh.Comment, "step one")
		equal(t, "Docker history comment", dh.Comment, "step one")
	}},
	{"SetAnnotation", func(t *testing.T, b *Builder) {
		b.SetAnnotation("org.opencontainers.image.title", "demo")
		b.SetAnnotation("b", "2")
	}, func(t *testing.T, c committed) {
		equal(t, "OCI manifest annotations", c.ociManifest.Annotations, map[string]string{"org.opencontainers.image.title": "demo", "b": "2"})
	}},
	{"UnsetAnnotation", func(t *testing.T, b *Builder) {
		b.SetAnnotation("a", "1")
		b.SetAnnotation("b", "2")
		b.UnsetAnnotation("a")
	}, func(t *testing.T, c committed) {
		equal(t, "OCI manifest annotations", c.ociManifest.Annotations, map[string]string{"b": "2"})
	}},
	{"ClearAnnotations", func(t *testing.T, b *Builder) {
		b.SetAnnotation("a", "1")
		b.ClearAnnotations()
		b.SetAnnotation("c", "3")
	}, func(t *testing.T, c committed) {
		equal(t, "OCI manifest annotations", c.ociManifest.Annotations, map[string]string{"c": "3"})
	}},
	{"SetHealthcheck", func(t *testing.T, b *Builder) {
		b.SetHealthcheck(&docker.HealthConfig{Test: []string{"CMD", "/check"}, Interval: 30 * time.Second, Timeout: time.Second, StartPeriod: time.Minute, StartInterval: 2 * time.Second, Retries: 4})
	}, func(t *testing.T, c committed) {
		equal(t, "Docker Healthcheck", c.runConfig(t).Healthcheck, &docker.HealthConfig{Test: []string{"CMD", "/check"}, Interval: 30 * time.Second, Timeout: time.Second, StartPeriod: time.Minute, StartInterval: 2 * time.Second, Retries: 4})
		notInOCI(t, c, "Healthcheck")
	}},
	{"SetShell", func(t *testing.T, b *Builder) { b.SetShell([]string{"/bin/bash", "-c"}) }, func(t *testing.T, c committed) {
		equal(t, "Docker Shell", c.runConfig(t).Shell, []string{"/bin/bash", "-c"})
		notInOCI(t, c, "Shell")
	}},
	{"AddOnBuild", func(t *testing.T, b *Builder) {
		b.AddOnBuild("RUN make")
		b.AddOnBuild("COPY . /src")
	}, func(t *testing.T, c committed) {
		equal(t, "Docker OnBuild", c.runConfig(t).OnBuild, []string{"RUN make", "COPY . /src"})
		notInOCI(t, c, "OnBuild")
	}},
	{"ClearOnBuild", func(t *testing.T, b *Builder) {
		b.AddOnBuild("RUN make")
		b.ClearOnBuild()
		b.AddOnBuild("RUN true")
	}, func(t *testing.T, c committed) {
		equal(t, "Docker OnBuild", c.runConfig(t).OnBuild, []string{"RUN true"})
	}},
	{"SetDomainname", func(t *testing.T, b *Builder) { b.SetDomainname("example.com") }, func(t *testing.T, c committed) {
		equal(t, "Docker Domainname", c.runConfig(t).Domainname, "example.com")
		notInOCI(t, c, "Domainname")
	}},
	{"SetHostname", func(t *testing.T, b *Builder) { b.SetHostname("box") }, func(t *testing.T, c committed) {
		equal(t, "Docker Hostname", c.runConfig(t).Hostname, "box")
		notInOCI(t, c, "Hostname")
	}},
}

// notInOCI checks that the OCI config's "config" has no key field.
func notInOCI(t *testing.T, c committed, field string) {
	t.Helper()
	if slices.Contains(c.ociRunKeys(), field) {
		t.Errorf("the OCI config holds the Docker-only %s: %v", field, c.ociRaw["config"])
	}
}

// TestConfigSetters checks each setter in a commit in each format, then
// again after Save and OpenBuilder.
func TestConfigSetters(t *testing.T) {
	store := newTestStore(t)
	ctx := context.Background()
	for i, tc := range configCases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("setter-%d", i)
			b, err := NewBuilder(ctx, store, BuilderOptions{FromImage: Scratch, Container: name})
			if err != nil {
				t.Fatal(err)
			}
			tc.set(t, b)
			tc.check(t, commitBoth(t, b))
			if t.Failed() {
				return
			}
			if err := b.Save(); err != nil {
				t.Fatal(err)
			}
			reopened, err := OpenBuilder(store, name)
			if err != nil {
				t.Fatal(err)
			}
			sameState(t, b, reopened)
			tc.check(t, commitBoth(t, reopened))
		})
	}
}

// sameState checks that two builders hold the same configs and settings.
func sameState(t *testing.T, a, b *Builder) {
	t.Helper()
	for _, v := range []struct {
		what string
		a, b any
	}{
		{"OCI config", a.OCIConfig(), b.OCIConfig()},
		{"Docker config", a.DockerConfig(), b.DockerConfig()},
		{"annotations", a.Annotations(), b.Annotations()},
		{"created by", a.CreatedBy(), b.CreatedBy()},
		{"history comment", a.HistoryComment(), b.HistoryComment()},
	} {
		ja, _ := json.Marshal(v.a)
		jb, _ := json.Marshal(v.b)
		if string(ja) != string(jb) {
			t.Errorf("%s after reopening:\n got %s\nwant %s", v.what, jb, ja)
		}
	}
}

func TestConfigGetters(t *testing.T) {
	b, err := NewBuilder(context.Background(), newTestStore(t), BuilderOptions{FromImage: Scratch, Container: "getters"})
	if err != nil {
		t.Fatal(err)
	}
	b.SetEnv("A", "1")
	b.SetCmd([]string{"c"})
	b.SetEntrypoint([]string{"e"})
	b.SetUser("u")
	b.SetWorkDir("/w")
	b.SetLabel("l", "1")
	for _, p := range []string{"1000", "80", "9/udp", "80/sctp"} {
		if err := b.SetPort(p); err != nil {
			t.Fatal(err)
		}
	}
	b.AddVolume("/v2")
	b.AddVolume("/v1")
	b.AddVolume("")
	if err := b.SetStopSignal("9"); err != nil {
		t.Fatal(err)
	}
	b.SetAuthor("a")
	b.SetComment("c")
	b.SetOS("linux")
	b.SetArchitecture("arm64")
	b.SetVariant("v8")
	b.SetOSVersion("1")
	b.SetOSFeatures([]string{"f"})
	b.SetCreatedBy("cb")
	b.SetHistoryComment("hc")
	b.SetAnnotation("an", "1")
	b.SetHealthcheck(&docker.HealthConfig{Test: []string{"NONE"}})
	b.SetShell([]string{"sh"})
	b.AddOnBuild("RUN x")
	b.SetDomainname("d")
	b.SetHostname("h")

	for _, g := range []struct {
		what      string
		got, want any
	}{
		{"Env", b.Env(), []string{"A=1"}},
		{"Cmd", b.Cmd(), []string{"c"}},
		{"Entrypoint", b.Entrypoint(), []string{"e"}},
		{"User", b.User(), "u"},
		{"WorkDir", b.WorkDir(), "/w"},
		{"Labels", b.Labels(), map[string]string{"l": "1"}},
		{"Ports", b.Ports(), []string{"9/udp", "80/sctp", "80/tcp", "1000/tcp"}},
		{"Volumes", b.Volumes(), []string{"/v1", "/v2"}},
		{"StopSignal", b.StopSignal(), "9"},
		{"Author", b.Author(), "a"},
		{"Comment", b.Comment(), "c"},
		{"OS", b.OS(), "linux"},
		{"Architecture", b.Architecture(), "arm64"},
		{"Variant", b.Variant(), "v8"},
		{"OSVersion", b.OSVersion(), "1"},
		{"OSFeatures", b.OSFeatures(), []string{"f"}},
		{"CreatedBy", b.CreatedBy(), "cb"},
		{"HistoryComment", b.HistoryComment(), "hc"},
		{"Annotations", b.Annotations(), map[string]string{"an": "1"}},
		{"Healthcheck", b.Healthcheck(), &docker.HealthConfig{Test: []string{"NONE"}}},
		{"Shell", b.Shell(), []string{"sh"}},
		{"OnBuild", b.OnBuild(), []string{"RUN x"}},
		{"Domainname", b.Domainname(), "d"},
		{"Hostname", b.Hostname(), "h"},
	} {
		equal(t, g.what, g.got, g.want)
	}

	// The Docker config holds the shared fields too.
	dc := b.DockerConfig()
	equal(t, "Docker Env", dc.Config.Env, []string{"A=1"})
	equal(t, "Docker author", dc.Author, "a")
	equal(t, "Docker architecture", dc.Architecture, "arm64")
	equal(t, "Docker ExposedPorts", dc.Config.ExposedPorts, portSet("9/udp", "80/sctp", "80/tcp", "1000/tcp"))
}

// TestConfigCopies checks that neither what a setter was given nor what a
// getter returned aliases the builder's state.
func TestConfigCopies(t *testing.T) {
	b, err := NewBuilder(context.Background(), newTestStore(t), BuilderOptions{FromImage: Scratch, Container: "copies"})
	if err != nil {
		t.Fatal(err)
	}
	cmd := []string{"a", "b"}
	b.SetCmd(cmd)
	cmd[0] = "changed"
	shell := []string{"/bin/sh", "-c"}
	b.SetShell(shell)
	shell[0] = "changed"
	h := &docker.HealthConfig{Test: []string{"CMD", "x"}}
	b.SetHealthcheck(h)
	h.Test[1], h.Retries = "changed", 9
	feats := []string{"f"}
	b.SetOSFeatures(feats)
	feats[0] = "changed"
	b.SetLabel("k", "v")
	b.SetEnv("E", "1")
	if err := b.SetPort("80"); err != nil {
		t.Fatal(err)
	}
	b.AddVolume("/v")
	b.SetAnnotation("a", "1")

	b.Cmd()[0] = "changed"
	b.Shell()[0] = "changed"
	b.Healthcheck().Test[0] = "changed"
	b.OSFeatures()[0] = "changed"
	b.Labels()["k"] = "changed"
	b.Env()[0] = "changed"
	b.Annotations()["a"] = "changed"
	oc := b.OCIConfig()
	oc.Config.Cmd[0] = "changed"
	oc.Config.Labels["k"] = "changed"
	oc.Config.ExposedPorts["1/tcp"] = struct{}{}
	oc.Config.Volumes["/x"] = struct{}{}
	oc.OSFeatures[0] = "changed"
	dc := b.DockerConfig()
	dc.Config.Cmd[0] = "changed"
	dc.Config.Labels["k"] = "changed"
	dc.Config.Healthcheck.Test[0] = "changed"
	dc.Config.Shell[0] = "changed"
	dc.Config.ExposedPorts["1/tcp"] = struct{}{}

	equal(t, "Cmd", b.Cmd(), []string{"a", "b"})
	equal(t, "Shell", b.Shell(), []string{"/bin/sh", "-c"})
	equal(t, "Healthcheck", b.Healthcheck(), &docker.HealthConfig{Test: []string{"CMD", "x"}})
	equal(t, "OSFeatures", b.OSFeatures(), []string{"f"})
	equal(t, "Labels", b.Labels(), map[string]string{"k": "v"})
	equal(t, "Env", b.Env(), []string{"E=1"})
	equal(t, "Annotations", b.Annotations(), map[string]string{"a": "1"})
	equal(t, "Ports", b.Ports(), []string{"80/tcp"})
	equal(t, "Volumes", b.Volumes(), []string{"/v"})
	dc = b.DockerConfig()
	equal(t, "Docker Cmd", dc.Config.Cmd, []string{"a", "b"})
	equal(t, "Docker Labels", dc.Config.Labels, map[string]string{"k": "v"})
	equal(t, "Docker ExposedPorts", dc.Config.ExposedPorts, portSet("80/tcp"))
}

func TestConfigInvalidValues(t *testing.T) {
	b, err := NewBuilder(context.Background(), newTestStore(t), BuilderOptions{FromImage: Scratch, Container: "invalid"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SetPort("80"); err != nil {
		t.Fatal(err)
	}
	if err := b.SetStopSignal("TERM"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"0", "65536", "80/icmp", "http", "", "90-80", "1:2"} {
		for _, f := range []func(string) error{b.SetPort, b.UnsetPort} {
			err := f(p)
			if !errors.Is(err, ErrInvalidPort) || !strings.Contains(err.Error(), fmt.Sprintf("%q", p)) {
				t.Errorf("port %q: error %v, want ErrInvalidPort quoting it", p, err)
			}
		}
	}
	for _, s := range []string{"0", "65", "SIGFOO", "-9", "TERM "} {
		err := b.SetStopSignal(s)
		if !errors.Is(err, ErrInvalidSignal) || !strings.Contains(err.Error(), fmt.Sprintf("%q", s)) {
			t.Errorf("signal %q: error %v, want ErrInvalidSignal quoting it", s, err)
		}
	}
	equal(t, "Ports after refused changes", b.Ports(), []string{"80/tcp"})
	equal(t, "StopSignal after refused changes", b.StopSignal(), "TERM")
	if err := b.SetStopSignal(""); err != nil {
		t.Errorf("removing the stop signal: %v", err)
	}
	equal(t, "StopSignal removed", b.StopSignal(), "")
}

// logCapture collects the warnings logrus's standard logger logs while a
// test runs.
type logCapture struct {
	mu       sync.Mutex
	messages []string
}

func (c *logCapture) Levels() []logrus.Level { return []logrus.Level{logrus.WarnLevel} }

func (c *logCapture) Fire(e *logrus.Entry) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.messages = append(c.messages, e.Message)
	return nil
}

func (c *logCapture) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.messages
	c.messages = nil
	return m
}

func captureWarnings(t *testing.T) *logCapture {
	t.Helper()
	c := &logCapture{}
	logger := logrus.StandardLogger()
	old := logger.ReplaceHooks(logrus.LevelHooks{})
	logger.AddHook(c)
	t.Cleanup(func() { logger.ReplaceHooks(old) })
	return c
}

func TestOCICommitDropsDockerOnlyFields(t *testing.T) {
	ctx := context.Background()
	b, err := NewBuilder(ctx, newTestStore(t), BuilderOptions{FromImage: Scratch, Container: "docker-only"})
	if err != nil {
		t.Fatal(err)
	}
	warnings := captureWarnings(t)
	dir := t.TempDir()
	ociRef, err := layout.ParseReference(filepath.Join(dir, "plain") + ":latest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx, ociRef, CommitOptions{Compression: CompressionNone}); err != nil {
		t.Fatal(err)
	}
	if w := warnings.take(); len(w) != 0 {
		t.Errorf("a commit with no Docker-only field warned: %q", w)
	}

	b.SetHealthcheck(&docker.HealthConfig{Test: []string{"CMD-SHELL", "true"}})
	b.SetShell([]string{"/bin/bash", "-c"})
	b.AddOnBuild("RUN make")
	b.SetDomainname("example.com")
	b.SetHostname("box")
	b.SetComment("hand made")
	fields := []string{"Healthcheck", "Shell", "OnBuild", "Domainname", "Hostname", "Comment"}

	c := commitBoth(t, b)
	w := warnings.take()
	for _, f := range fields {
		n := 0
		for _, m := range w {
			if strings.Contains(m, "has no "+f+",") && strings.Contains(m, "container docker-only") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d warnings name %s, want 1 (from the OCI commit only); warnings: %q", n, f, w)
		}
	}
	if len(w) != len(fields) {
		t.Errorf("got %d warnings, want %d: %q", len(w), len(fields), w)
	}
	for _, f := range fields[:5] {
		notInOCI(t, c, f)
	}
	if _, ok := c.ociRaw["comment"]; ok {
		t.Errorf("the OCI config has a comment")
	}
	rc := c.runConfig(t)
	if rc.Healthcheck == nil || len(rc.Shell) == 0 || len(rc.OnBuild) == 0 || rc.Domainname == "" || rc.Hostname == "" || c.docker.Comment == "" {
		t.Errorf("the Docker config lost a Docker-only field: %+v, comment %q", rc, c.docker.Comment)
	}
}

func TestDockerOnlyFields(t *testing.T) {
	var s builderState
	equal(t, "fields of an empty state", dockerOnlyFields(&s), []string(nil))
	s.setShell([]string{"sh"})
	s.DockerConfig.Comment = "c"
	equal(t, "fields", dockerOnlyFields(&s), []string{"Shell", "Comment"})
}

// TestConfigConcurrentWithCommit runs setters while commits read the state;
// run it with -race.
func TestConfigConcurrentWithCommit(t *testing.T) {
	ctx := context.Background()
	b, err := NewBuilder(ctx, newTestStore(t), BuilderOptions{FromImage: Scratch, Container: "concurrent"})
	if err != nil {
		t.Fatal(err)
	}
	b.SetLabel("start", "1")
	b.AddOnBuild("RUN a")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			b.SetLabel(fmt.Sprint("l", i%5), fmt.Sprint(i))
			b.SetEnv("I", fmt.Sprint(i))
			_ = b.SetPort(fmt.Sprint(1 + i%100))
			b.AddVolume(fmt.Sprint("/v", i%3))
			b.SetHealthcheck(&docker.HealthConfig{Test: []string{"CMD", fmt.Sprint(i)}})
			b.AddOnBuild("RUN b")
			b.ClearOnBuild()
			b.SetAnnotation("a", fmt.Sprint(i))
			_ = b.ApplyChanges([]string{"ENV J=$I", "EXPOSE 8080", "LABEL x=y"})
			_ = b.DockerConfig()
			_ = b.Save()
		}
	}()
	dir := t.TempDir()
	for i := range 6 {
		ref, err := directory.NewReference(filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		opts := CommitOptions{Compression: CompressionNone}
		if i%2 == 1 {
			opts.ManifestType = docker.V2S2MediaTypeManifest
		}
		if _, err := b.Commit(ctx, ref, opts); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-done
}

// TestConfigFromBaseImage starts from a Docker-format base image: the
// builder inherits its config, Docker-only fields included, and the
// setters can take away what the base set.
func TestConfigFromBaseImage(t *testing.T) {
	ctx := context.Background()
	store := newTestStore(t)
	base, err := NewBuilder(ctx, store, BuilderOptions{FromImage: Scratch, Container: "base"})
	if err != nil {
		t.Fatal(err)
	}
	if err := base.ApplyChanges([]string{
		`ENV A=1 B=2`, `LABEL keep=1 drop=2`, `EXPOSE 80 443`, `VOLUME /a /b`,
		`HEALTHCHECK --retries=2 CMD ["/check"]`, `ONBUILD RUN make`, `CMD ["base"]`,
	}); err != nil {
		t.Fatal(err)
	}
	base.SetHostname("basehost")
	ref, err := is.Transport.ParseStoreReference(store, "localhost/base:latest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := base.Commit(ctx, ref, CommitOptions{ManifestType: docker.V2S2MediaTypeManifest}); err != nil {
		t.Fatal(err)
	}

	b, err := NewBuilder(ctx, store, BuilderOptions{FromImage: "localhost/base:latest", Container: "child"})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "inherited Env", b.Env(), []string{"A=1", "B=2"})
	equal(t, "inherited Healthcheck", b.Healthcheck(), &docker.HealthConfig{Test: []string{"CMD", "/check"}, Retries: 2})
	equal(t, "inherited OnBuild", b.OnBuild(), []string{"RUN make"})
	equal(t, "inherited Hostname", b.Hostname(), "basehost")

	b.UnsetEnv("A")
	b.UnsetLabel("drop")
	if err := b.UnsetPort("443"); err != nil {
		t.Fatal(err)
	}
	b.RemoveVolume("/b")
	b.SetHealthcheck(nil)
	b.ClearOnBuild()
	b.SetHostname("")
	b.SetCmd(nil)
	warnings := captureWarnings(t)
	c := commitBoth(t, b)
	if w := warnings.take(); len(w) != 0 {
		t.Errorf("the Docker-only fields were all removed, yet the OCI commit warned: %q", w)
	}
	rc := c.runConfig(t)
	equal(t, "OCI Env", c.oci.Config.Env, []string{"B=2"})
	equal(t, "Docker Env", rc.Env, []string{"B=2"})
	equal(t, "OCI Labels", c.oci.Config.Labels, map[string]string{"keep": "1"})
	equal(t, "Docker Labels", rc.Labels, map[string]string{"keep": "1"})
	equal(t, "OCI ExposedPorts", c.oci.Config.ExposedPorts, keySet("80/tcp"))
	equal(t, "Docker ExposedPorts", rc.ExposedPorts, portSet("80/tcp"))
	equal(t, "OCI Volumes", c.oci.Config.Volumes, keySet("/a"))
	equal(t, "Docker Volumes", rc.Volumes, keySet("/a"))
	equal(t, "OCI Cmd", c.oci.Config.Cmd, []string(nil))
	equal(t, "Docker Cmd", rc.Cmd, []string(nil))
	equal(t, "Docker Healthcheck", rc.Healthcheck, (*docker.HealthConfig)(nil))
	equal(t, "Docker OnBuild", rc.OnBuild, []string(nil))
	equal(t, "Docker Hostname", rc.Hostname, "")
}

func TestCommitFormatTheDestinationCannotHold(t *testing.T) {
	// An OCI layout holds only OCI manifests: copy.Image converts a Docker
	// v2s2 image, and the commit says so.
	ctx := context.Background()
	b, err := NewBuilder(ctx, newTestStore(t), BuilderOptions{FromImage: Scratch, Container: "converted"})
	if err != nil {
		t.Fatal(err)
	}
	warnings := captureWarnings(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		manifestType string
		warn         bool
	}{
		{"", false},
		{v1.MediaTypeImageManifest, false},
		{docker.V2S2MediaTypeManifest, true},
	} {
		ref, err := layout.ParseReference(filepath.Join(dir, "layout") + ":latest")
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.Commit(ctx, ref, CommitOptions{ManifestType: tc.manifestType, Compression: CompressionNone})
		if err != nil {
			t.Fatalf("manifest type %q: %v", tc.manifestType, err)
		}
		if res.ManifestType != v1.MediaTypeImageManifest {
			t.Errorf("manifest type %q: the layout holds a %s", tc.manifestType, res.ManifestType)
		}
		w := warnings.take()
		if !tc.warn {
			if len(w) != 0 {
				t.Errorf("manifest type %q: warned %q", tc.manifestType, w)
			}
			continue
		}
		if len(w) != 1 || !strings.Contains(w[0], "container converted") || !strings.Contains(w[0], v1.MediaTypeImageManifest+", not "+docker.V2S2MediaTypeManifest) {
			t.Errorf("manifest type %q: warnings %q, want one naming the container and both types", tc.manifestType, w)
		}
	}
}
