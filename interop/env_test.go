package interop

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bricklayer/bricklayer"
	"github.com/bricklayer/bricklayer/docker"
	"github.com/bricklayer/bricklayer/internal/testutil"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	is "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/transports/alltransports"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
)

// env is what every interop test shares: a vfs store under a temporary
// root, configuration files that replace the system's, and the tools.
type env struct {
	store         storage.Store
	root, runroot string
	// policy is an accept-anything signature policy; registriesConf an
	// empty registries.conf; emptyDir an empty directory for the
	// configuration directories.
	policy, registriesConf, emptyDir string
	// toolEnv is added to the environment of every tool run.
	toolEnv []string
	// Paths of the tools.
	skopeo, umoci, crane string
}

// newEnv skips the test unless it runs as root with skopeo, umoci and crane
// installed, and sets up a store and configuration under t.TempDir().
func newEnv(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("integration test needs root: the store chowns, the trees have several owners, umoci unpacks them")
	}
	e := &env{
		skopeo: testutil.RequireTool(t, "skopeo"),
		umoci:  testutil.RequireTool(t, "umoci"),
		crane:  testutil.RequireTool(t, "crane"),
	}
	e.store, e.root, e.runroot = newStore(t)
	dir := t.TempDir()

	e.policy = filepath.Join(dir, "policy.json")
	e.registriesConf = filepath.Join(dir, "registries.conf")
	storageConf := filepath.Join(dir, "storage.conf")
	e.emptyDir = filepath.Join(dir, "empty")
	files := map[string]string{
		e.policy:         `{"default":[{"type":"insecureAcceptAnything"}]}`,
		e.registriesConf: "unqualified-search-registries = []\n",
		storageConf:      "[storage]\ndriver = \"vfs\"\n",
	}
	for name, content := range files {
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(e.emptyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	toolTmp := filepath.Join(dir, "tooltmp")
	if err := os.Mkdir(toolTmp, 0o700); err != nil {
		t.Fatal(err)
	}
	e.toolEnv = []string{
		"CONTAINERS_REGISTRIES_CONF=" + e.registriesConf,
		"CONTAINERS_STORAGE_CONF=" + storageConf,
		"TMPDIR=" + toolTmp,
	}
	return e
}

// newStore opens a vfs store under t.TempDir(), shut down when the test
// ends, and returns it with its graph root and run root. The test is
// skipped unless it runs as root: the store chowns its layer directories.
func newStore(t *testing.T) (store storage.Store, root, runroot string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("test needs root: a vfs store chowns its layer directories")
	}
	dir := t.TempDir()
	root, runroot = filepath.Join(dir, "root"), filepath.Join(dir, "run")
	store, err := storage.GetStore(storage.StoreOptions{RunRoot: runroot, GraphRoot: root, GraphDriverName: "vfs"})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() {
		if _, err := store.Shutdown(true); err != nil {
			t.Logf("shutting down store: %v", err)
		}
	})
	return store, root, runroot
}

// newPlainStore sets up what a test that needs no tools shares: a store
// (newStore), an accept-anything signature policy, and a SystemContext that
// names the policy and keeps its blob-info cache in a directory of its own.
func newPlainStore(t *testing.T) (store storage.Store, sys *types.SystemContext, policy string) {
	t.Helper()
	store, _, _ = newStore(t)
	policy = filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return store, &types.SystemContext{BlobInfoCacheDir: t.TempDir(), SignaturePolicyPath: policy}, policy
}

// mountBuilder makes a builder in store with opts, mounts it and returns it
// with its mount point. The test's cleanup unmounts it unless the test has.
func mountBuilder(t *testing.T, ctx context.Context, store storage.Store, opts bricklayer.BuilderOptions) (*bricklayer.Builder, string) {
	t.Helper()
	b, err := bricklayer.NewBuilder(ctx, store, opts)
	if err != nil {
		t.Fatalf("making a builder from %s: %v", opts.FromImage, err)
	}
	mp, err := b.Mount()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b.MountPoint() != "" {
			unmount(t, b)
		}
	})
	return b, mp
}

// commitToStore commits b into store as the image name, through sys and
// policy.
func commitToStore(t *testing.T, ctx context.Context, store storage.Store, b *bricklayer.Builder, name string, sys *types.SystemContext, policy string) {
	t.Helper()
	ref, err := is.Transport.ParseStoreReference(store, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(ctx, ref, bricklayer.CommitOptions{SystemContext: sys, SignaturePolicyPath: policy}); err != nil {
		t.Fatalf("committing %s into the store as %s: %v", b.ContainerName(), name, err)
	}
}

// sysContext is a SystemContext that needs no system configuration, talks
// plain HTTP to the test registry and keeps its blob-info cache in a
// directory of its own (a shared cache lets one compression's push reuse
// another's blobs).
func (e *env) sysContext(t *testing.T) *types.SystemContext {
	t.Helper()
	return &types.SystemContext{
		BlobInfoCacheDir:            t.TempDir(),
		BigFilesTemporaryDir:        t.TempDir(),
		DockerInsecureSkipTLSVerify: types.OptionalBoolTrue,
		SystemRegistriesConfPath:    e.registriesConf,
		SystemRegistriesConfDirPath: e.emptyDir,
		RegistriesDirPath:           e.emptyDir,
		SignaturePolicyPath:         e.policy,
		DockerPerHostCertDirPath:    e.emptyDir,
		AuthFilePath:                filepath.Join(e.emptyDir, "auth.json"),
	}
}

// skopeoRun runs skopeo with the test's policy and configuration.
func (e *env) skopeoRun(t *testing.T, args ...string) []byte {
	t.Helper()
	return testutil.Run(t, e.toolEnv, e.skopeo, append([]string{"--policy", e.policy}, args...)...)
}

// storeName is how tools outside this process name an image in the test's
// store.
func (e *env) storeName(name string) string {
	return fmt.Sprintf("containers-storage:[vfs@%s+%s]%s", e.root, e.runroot, name)
}

// Transports written by the matrix.
const (
	tOCI        = "oci"
	tOCIArchive = "oci-archive"
	tDir        = "dir"
	tDocArchive = "docker-archive"
	tStorage    = "containers-storage"
	tRegistry   = "docker"
)

var allTransports = []string{tOCI, tOCIArchive, tDir, tDocArchive, tStorage, tRegistry}

// target is one destination of a commit and how the tools name it.
type target struct {
	transport string
	ref       types.ImageReference
	// name is the destination in transport:details form, for skopeo.
	name string
	// path is the local file or directory written, "" for the store and the
	// registry.
	path string
	// tag is the tag in an OCI layout, the repo:tag elsewhere.
	tag string
	// remote is the registry's "HOST:PORT/REPO:TAG", for crane.
	remote string
}

// newTarget makes a destination of transport for the image called name
// (unique in the test), under dir, in e's store or in registry.
func (e *env) newTarget(t *testing.T, transport, dir, registry, name string) target {
	t.Helper()
	tg := target{transport: transport, tag: "latest"}
	switch transport {
	case tOCI:
		tg.path = filepath.Join(dir, "layout")
		tg.name = "oci:" + tg.path + ":" + tg.tag
	case tOCIArchive:
		tg.path = filepath.Join(dir, "image.oci.tar")
		tg.name = "oci-archive:" + tg.path + ":" + tg.tag
	case tDir:
		tg.path = filepath.Join(dir, "dir")
		tg.name = "dir:" + tg.path
	case tDocArchive:
		tg.path = filepath.Join(dir, "image.docker.tar")
		tg.tag = "localhost/" + name + ":latest"
		tg.name = "docker-archive:" + tg.path + ":" + tg.tag
	case tStorage:
		tg.tag = "localhost/" + name + ":latest"
		tg.name = e.storeName(tg.tag)
		ref, err := is.Transport.ParseStoreReference(e.store, tg.tag)
		if err != nil {
			t.Fatalf("parsing store reference %s: %v", tg.tag, err)
		}
		tg.ref = ref
		return tg
	case tRegistry:
		tg.remote = registry + "/interop/" + name + ":latest"
		tg.tag = "interop/" + name + ":latest"
		tg.name = "docker://" + tg.remote
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	ref, err := alltransports.ParseImageName(tg.name)
	if err != nil {
		t.Fatalf("parsing %s: %v", tg.name, err)
	}
	tg.ref = ref
	return tg
}

// format is a manifest type and layer compression a commit asks for.
type format struct {
	manifestType string
	compression  bricklayer.Compression
}

// validFormats are the pairs a commit accepts: zstd has no Docker v2s2
// media type.
var validFormats = []format{
	{v1.MediaTypeImageManifest, bricklayer.CompressionNone},
	{v1.MediaTypeImageManifest, bricklayer.CompressionGzip},
	{v1.MediaTypeImageManifest, bricklayer.CompressionZstd},
	{docker.V2S2MediaTypeManifest, bricklayer.CompressionNone},
	{docker.V2S2MediaTypeManifest, bricklayer.CompressionGzip},
}

func (f format) String() string {
	kind := "oci"
	if f.manifestType == docker.V2S2MediaTypeManifest {
		kind = "v2s2"
	}
	return kind + "-" + f.compression.String()
}

// layerMediaType is the media type a manifest of type mtype gives a layer
// compressed with c, written out here rather than taken from the library.
func layerMediaType(mtype string, c bricklayer.Compression) string {
	if mtype == docker.V2S2MediaTypeManifest {
		if c == bricklayer.CompressionNone {
			return "application/vnd.docker.image.rootfs.diff.tar"
		}
		return "application/vnd.docker.image.rootfs.diff.tar.gzip"
	}
	switch c {
	case bricklayer.CompressionNone:
		return "application/vnd.oci.image.layer.v1.tar"
	case bricklayer.CompressionZstd:
		return "application/vnd.oci.image.layer.v1.tar+zstd"
	}
	return "application/vnd.oci.image.layer.v1.tar+gzip"
}

// sanitize makes s usable in a repository name.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(s))
}
