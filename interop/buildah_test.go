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
	is "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/transports/alltransports"
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
	buildah := e.buildah(t, buildahBin, filepath.Join(bdir, "root"), filepath.Join(bdir, "run"))
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

// buildah returns a function that runs buildah on the vfs store at root and
// runRoot, failing the test if it fails, and returns its trimmed output.
func (e *env) buildah(t *testing.T, bin, root, runRoot string) func(args ...string) string {
	global := []string{"--root", root, "--runroot", runRoot, "--storage-driver", "vfs"}
	return func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(string(testutil.Run(t, e.toolEnv, bin, append(global, args...)...)))
	}
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

// TestBuildahOnOurStoreImage builds with buildah FROM an image we committed
// into the store. Our commit writes the new layer under an ID the store
// picks and names it by its chain ID; buildah (through containers/image)
// must find that layer as its new image's parent, not write a copy, and
// the image it makes must unpack (skopeo, umoci) to our tree plus its file.
func TestBuildahOnOurStoreImage(t *testing.T) {
	e := newEnv(t)
	buildahBin := testutil.RequireTool(t, "buildah")
	ctx := context.Background()
	buildah := e.buildah(t, buildahBin, e.root, e.runroot)

	b, rootfs := mountBuilder(t, ctx, e.store, bricklayer.BuilderOptions{FromImage: bricklayer.Scratch, Container: "ours-base"})
	testutil.FillTree(t, rootfs, 21)
	ref, err := is.Transport.ParseStoreReference(e.store, "localhost/ours-base:latest")
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Commit(ctx, ref, bricklayer.CommitOptions{SystemContext: e.sysContext(t)})
	if err != nil {
		t.Fatal(err)
	}
	ours, err := e.store.Image(res.ImageID)
	if err != nil {
		t.Fatal(err)
	}
	// A bottom layer's chain ID is its diffID's hex.
	if l, err := e.store.Layer(ours.TopLayer); err != nil || !slices.Contains(l.Names, l.UncompressedDigest.Encoded()) || l.ID == l.UncompressedDigest.Encoded() {
		t.Fatalf("our image's layer %s (%v) is not one written under its own ID and named by its chain ID, which this test is about", ours.TopLayer, err)
	}

	ctr := buildah("from", "--signature-policy", e.policy, "--name", "buildah-on-ours", "localhost/ours-base:latest")
	mp := buildah("mount", ctr)
	added := []byte("written by buildah on our image\n")
	for _, root := range []string{mp, rootfs} { // ours too, as the tree to compare with
		if err := os.WriteFile(filepath.Join(root, "from-buildah.txt"), added, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	buildah("umount", ctr)
	id := buildah("commit", "--quiet", "--signature-policy", e.policy, ctr, "localhost/buildah-on-ours:latest")

	theirs, err := e.store.Image(id)
	if err != nil {
		t.Fatalf("buildah's image %s: %v", id, err)
	}
	top, err := e.store.Layer(theirs.TopLayer)
	if err != nil {
		t.Fatal(err)
	}
	if top.Parent != ours.TopLayer {
		t.Errorf("buildah's new layer %s is on %q, want our image's top layer %s", top.ID, top.Parent, ours.TopLayer)
	}

	layout := filepath.Join(t.TempDir(), "layout")
	e.skopeoRun(t, "copy", "--quiet", e.storeName("localhost/buildah-on-ours:latest"), "oci:"+layout+":x")
	bundle := filepath.Join(t.TempDir(), "bundle")
	testutil.Run(t, e.toolEnv, e.umoci, "unpack", "--image", layout+":x", bundle)
	if n := testutil.CompareTrees(t, rootfs, filepath.Join(bundle, "rootfs")); n > 0 {
		t.Errorf("buildah's image, unpacked by umoci, differs from our tree plus its file in %d places", n)
	}
}

// TestCommitBuildahContainer commits containers that buildah made and
// configured, one from scratch and one from an image, and checks that our
// image has the config buildah's own commit of the container gives it:
// buildah keeps its config edits in its state, not in the image.
func TestCommitBuildahContainer(t *testing.T) {
	e := newEnv(t)
	buildahBin := testutil.RequireTool(t, "buildah")
	ctx := context.Background()
	buildah := e.buildah(t, buildahBin, e.root, e.runroot)
	config := []string{"config", "--env", "A=1", "--cmd", `["/x","y"]`, "--entrypoint", `["/bin/sh","-c"]`,
		"--workingdir", "/app", "--label", "l=v", "--port", "8080/tcp", "--user", "1000:1000",
		"--volume", "/data", "--stop-signal", "SIGINT", "--author", "someone", "--created-by", "made by buildah"}

	scratch := buildah("from", "--signature-policy", e.policy, "--name", "b-scratch", "scratch")
	testutil.FillTree(t, buildah("mount", scratch), 31)
	buildah("umount", scratch)
	buildah(append(config, scratch)...)
	buildah("commit", "--quiet", "--signature-policy", e.policy, scratch, "localhost/b-base:1")
	derived := buildah("from", "--signature-policy", e.policy, "--name", "b-derived", "localhost/b-base:1")
	buildah("config", "--env", "B=2", "--label", "l=w", "--cmd", `["/z"]`, derived)

	for _, name := range []string{scratch, derived} {
		theirs := filepath.Join(t.TempDir(), "theirs")
		buildah("commit", "--quiet", "--signature-policy", e.policy, name, "oci:"+theirs+":x")
		b, err := bricklayer.OpenBuilder(e.store, name)
		if err != nil {
			t.Fatal(err)
		}
		ours := filepath.Join(t.TempDir(), "ours")
		dest, err := alltransports.ParseImageName("oci:" + ours + ":x")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Commit(ctx, dest, bricklayer.CommitOptions{SystemContext: e.sysContext(t)}); err != nil {
			t.Fatal(err)
		}
		var want, got v1.Image
		for _, c := range []struct {
			layout string
			img    *v1.Image
		}{{theirs, &want}, {ours, &got}} {
			if err := json.Unmarshal(e.skopeoRun(t, "inspect", "--config", "oci:"+c.layout+":x"), c.img); err != nil {
				t.Fatal(err)
			}
		}
		// buildah stamps its commits, the base image included.
		delete(want.Config.Labels, "io.buildah.version")
		delete(got.Config.Labels, "io.buildah.version")
		wantJSON, _ := json.Marshal(want.Config)
		gotJSON, _ := json.Marshal(got.Config)
		if string(gotJSON) != string(wantJSON) || got.Author != want.Author {
			t.Errorf("%s: our commit's config is\n%s (author %q)\nbuildah's is\n%s (author %q)", name, gotJSON, got.Author, wantJSON, want.Author)
		}
		// The scratch container's --created-by is its history entry's.
		if n := len(got.History); name == scratch && (n == 0 || got.History[n-1].CreatedBy != "made by buildah") {
			t.Errorf("%s: history %+v, want the last entry created by %q", name, got.History, "made by buildah")
		}
	}
}
