package interop

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bricklayer/bricklayer"
	"github.com/bricklayer/bricklayer/internal/testutil"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestBuildahBase builds FROM an image another tool made: Debian's buildah
// makes a two-layer image (gzip layers, an Env and a label) into an oci:
// layout with its own store; we pull it by transport reference, change and
// add files, and commit in every format to every transport. The base
// layers' blobs must be in our manifests unchanged, and the images must pass
// every check of the matrix.
func TestBuildahBase(t *testing.T) {
	e := newEnv(t)
	buildahBin := testutil.RequireTool(t, "buildah")
	ctx := context.Background()
	registry := testutil.StartRegistry(t)

	bdir := t.TempDir()
	global := []string{"--root", filepath.Join(bdir, "root"), "--runroot", filepath.Join(bdir, "run"), "--storage-driver", "vfs"}
	buildah := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(string(testutil.Run(t, e.toolEnv, buildahBin, append(global, args...)...)))
	}
	ctr1 := buildah("from", "--signature-policy", e.policy, "--name", "interop-base1", "scratch")
	mp1 := buildah("mount", ctr1)
	testutil.FillTree(t, mp1, 11)
	buildah("umount", ctr1)
	buildah("commit", "--quiet", "--signature-policy", e.policy, "--disable-compression=false", ctr1, "localhost/interop-base1")
	ctr2 := buildah("from", "--signature-policy", e.policy, "--name", "interop-base2", "localhost/interop-base1")
	mp2 := buildah("mount", ctr2)
	if err := os.MkdirAll(filepath.Join(mp2, "srv/second"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mp2, "srv/second/layer.txt"), []byte("written by buildah in its second layer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	buildah("umount", ctr2)
	buildah("config", "--env", "FROM_BUILDAH=1", "--label", "made-by=buildah", ctr2)
	layout := filepath.Join(t.TempDir(), "buildah-layout")
	buildah("commit", "--quiet", "--signature-policy", e.policy, "--disable-compression=false", ctr2, "oci:"+layout+":base")

	baseName := "oci:" + layout + ":base"
	baseRaw := e.skopeoRun(t, "inspect", "--raw", baseName)
	baseManifest := parseManifest(t, baseName, baseRaw)
	var baseDigests []digest.Digest
	for _, l := range baseManifest.Layers {
		if l.MediaType != v1.MediaTypeImageLayerGzip {
			t.Fatalf("buildah wrote a %s layer, this test wants gzip base layers:\n%s", l.MediaType, baseRaw)
		}
		baseDigests = append(baseDigests, l.Digest)
	}
	if len(baseDigests) != 2 {
		t.Fatalf("buildah wrote %d layers, want 2:\n%s", len(baseDigests), baseRaw)
	}

	sys := e.sysContext(t)
	b, rootfs := mountBuilder(t, ctx, e.store, bricklayer.BuilderOptions{FromImage: baseName, Container: "from-buildah", SystemContext: sys, SignaturePolicyPath: e.policy})
	testutil.ChangeTree(t, rootfs, 12)

	e.commitEverywhere(t, ctx, b, registry, "from-buildah-", func(t *testing.T, f format, tg target, res bricklayer.CommitResult) {
		cfg := checkImage(t, e, tg, expect{format: f, result: res, rootfs: rootfs, layers: 3, baseDigests: baseDigests})
		checkInheritedConfig(t, tg, cfg)
	})
}

// checkInheritedConfig: the config buildah gave the base image is in ours.
func checkInheritedConfig(t *testing.T, tg target, raw []byte) {
	t.Helper()
	var cfg struct {
		Config struct {
			Env    []string          `json:"Env"`
			Labels map[string]string `json:"Labels"`
		} `json:"config"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("%s: parsing config: %v", tg.name, err)
	}
	if !slices.Contains(cfg.Config.Env, "FROM_BUILDAH=1") || cfg.Config.Labels["made-by"] != "buildah" {
		t.Errorf("%s: config has Env %v and labels %v, want FROM_BUILDAH=1 and made-by=buildah from the base image", tg.name, cfg.Config.Env, cfg.Config.Labels)
	}
}
