package bricklayer

import (
	"archive/tar"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bricklayer/bricklayer/docker"
	digest "github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/directory"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/types"
)

// optionsFixture is a base image in the store and a builder made from it
// with changes: files added, changed and removed, env and labels set.
type optionsFixture struct {
	env      *testEnv
	b        *Builder
	mp       string
	base     readImage // the base image as read back
	baseTree tree      // what the base image holds
	tree     tree      // what the container holds
}

func newOptionsFixture(t *testing.T) *optionsFixture {
	t.Helper()
	env := newTestEnv(t)
	a, wantA := env.newFilledBuilder(t, "base", 7)
	baseRef := storeRef(t, env.store, "localhost/opts-base:1")
	if _, err := a.Commit(env.ctx, baseRef, CommitOptions{CreatedBy: "base layer", SystemContext: env.sys}); err != nil {
		t.Fatal(err)
	}
	f := &optionsFixture{env: env, baseTree: wantA}
	f.base = checkImage(t, baseRef, wantImage{Layers: 1})

	b, mp := env.newMountedBuilder(t, "localhost/opts-base:1", "work")
	f.b, f.mp = b, mp
	f.tree = maps.Clone(wantA)
	if err := os.WriteFile(filepath.Join(f.mp, "added"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.tree["added"] = entry{Type: tar.TypeReg, Mode: 0o644, Size: 3, Content: digest.FromString("new")}
	if err := os.WriteFile(filepath.Join(f.mp, "dir/block"), []byte("changed"), 0o640); err != nil {
		t.Fatal(err)
	}
	f.tree["dir/block"] = entry{Type: tar.TypeReg, Mode: 0o640, Size: 7, Content: digest.FromString("changed")}
	if err := os.Remove(filepath.Join(f.mp, "one")); err != nil {
		t.Fatal(err)
	}
	delete(f.tree, "one")
	if err := os.RemoveAll(filepath.Join(f.mp, "dir/sub")); err != nil {
		t.Fatal(err)
	}
	removeUnder(f.tree, "dir/sub", true)
	b.SetEnv("KEEP", "1")
	b.SetEnv("DROP", "2")
	b.SetLabel("keep", "1")
	b.SetLabel("drop", "2")
	b.SetAnnotation("builder.note", "b")
	b.SetCreatedBy("work step")
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}
	return f
}

// extraContentFixture writes host files for ExtraImageContent and returns
// the map to pass and the entries they make in the image. It replaces the
// container's dir/block, adds a directory tree under /opt (which the
// container lacks) and a file under /etc/app (which it lacks too).
func extraContentFixture(t *testing.T, dir string) (map[string]string, tree) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	file := func(p, content string, mode os.FileMode) {
		t.Helper()
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, []byte(content), 0o600))
		must(os.Chmod(p, mode))
	}
	file(filepath.Join(dir, "app.conf"), "conf", 0o640)
	file(filepath.Join(dir, "block"), "from the host", 0o600)
	file(filepath.Join(dir, "tool", "x"), "x", 0o755)
	file(filepath.Join(dir, "tool", "sub", "y"), "yy", 0o644)
	must(os.Symlink("x", filepath.Join(dir, "tool", "ln")))
	must(os.Chmod(filepath.Join(dir, "tool"), 0o750))
	content := map[string]string{
		"/etc/app/app.conf": filepath.Join(dir, "app.conf"),
		"dir/block":         filepath.Join(dir, "block"),
		"/opt/tool/":        filepath.Join(dir, "tool"),
	}
	want := tree{
		"etc":              {Type: tar.TypeDir, Mode: 0o755},
		"etc/app":          {Type: tar.TypeDir, Mode: 0o755},
		"etc/app/app.conf": {Type: tar.TypeReg, Mode: 0o640, Size: 4, Content: digest.FromString("conf")},
		"dir/block":        {Type: tar.TypeReg, Mode: 0o600, Size: 13, Content: digest.FromString("from the host")},
		"opt":              {Type: tar.TypeDir, Mode: 0o755},
		"opt/tool":         {Type: tar.TypeDir, Mode: 0o750},
		"opt/tool/x":       {Type: tar.TypeReg, Mode: 0o755, Size: 1, Content: digest.FromString("x")},
		"opt/tool/sub":     {Type: tar.TypeDir, Mode: 0o755},
		"opt/tool/sub/y":   {Type: tar.TypeReg, Mode: 0o644, Size: 2, Content: digest.FromString("yy")},
		"opt/tool/ln":      {Type: tar.TypeSymlink, Mode: 0o777, Linkname: "x"},
	}
	return content, want
}

// withTree is base with the entries of over (and their descendants)
// replacing its own.
func withTree(base, over tree) tree {
	out := maps.Clone(base)
	for name, e := range over {
		if e.Type != tar.TypeDir {
			removeUnder(out, name, true)
		}
		out[name] = e
	}
	return out
}

// hasWhiteouts reports whether a layer holds whiteout entries.
func hasWhiteouts(l layer) bool {
	return slices.ContainsFunc(l.Entries, func(n string) bool { return strings.HasPrefix(filepath.Base(n), ".wh.") })
}

func TestCommitLayerOptions(t *testing.T) {
	f := newOptionsFixture(t)
	env := f.env
	extra, extraTree := extraContentFixture(t, filepath.Join(env.out, "host"))
	stamp := time.Date(2022, 2, 2, 2, 2, 2, 0, time.UTC)
	baseLayer := f.base.Layers[0]
	baseHistory := f.base.Config.History

	for _, tc := range []struct {
		name  string
		mtype string
		// storage commits into the store instead of an OCI layout (or a
		// dir: for Docker).
		storage bool
		opts    CommitOptions
		// layers is the number of layers; keepsBase: layer 0 is the base
		// image's blob.
		layers    int
		keepsBase bool
		want      tree
		// history is the entries wanted: "base" for the base image's
		// entry (as it was, or marked empty for a squash), "new", "empty",
		// "extra".
		history []string
		// topHas lists entries of the top layer, topHasNot entries it must
		// not hold.
		topHas, topHasNot []string
	}{
		{
			name: "squash", opts: CommitOptions{Squash: true},
			layers: 1, want: f.tree, history: []string{"base(empty)", "new"},
			topHas: []string{"setuid", "added", "dir/block"},
		},
		{
			name: "squash-docker", mtype: docker.V2S2MediaTypeManifest, opts: CommitOptions{Squash: true},
			layers: 1, want: f.tree, history: []string{"base(empty)", "new"},
		},
		{
			name: "squash-extra", opts: CommitOptions{Squash: true, ExtraImageContent: extra},
			layers: 1, want: withTree(f.tree, extraTree), history: []string{"base(empty)", "new"},
			topHas: []string{"setuid", "opt/tool/sub/y", "etc/app/app.conf"},
		},
		{
			name: "squash-storage", storage: true, opts: CommitOptions{Squash: true, ExtraImageContent: extra},
			layers: 1, want: withTree(f.tree, extraTree), history: []string{"base(empty)", "new"},
		},
		{
			name: "squash-new-layers", opts: CommitOptions{SquashNewLayers: true},
			layers: 2, keepsBase: true, want: f.tree, history: []string{"base", "new"},
			topHas: []string{".wh.one", "dir/.wh.sub", "added"}, topHasNot: []string{"setuid"},
		},
		{
			name: "squash-new-layers-extra", opts: CommitOptions{SquashNewLayers: true, ExtraImageContent: extra},
			layers: 2, keepsBase: true, want: withTree(f.tree, extraTree), history: []string{"base", "new"},
			topHas: []string{".wh.one", "added", "opt/tool/x", "etc/app"}, topHasNot: []string{"setuid"},
		},
		{
			name: "extra", opts: CommitOptions{ExtraImageContent: extra},
			layers: 3, keepsBase: true, want: withTree(f.tree, extraTree), history: []string{"base", "new", "extra"},
			// The extra layer holds the extra content and the directories
			// it made, nothing of the container's.
			topHas: slices.Collect(maps.Keys(extraTree)), topHasNot: []string{"added", "dir", ".wh.one"},
		},
		{
			name: "empty-layer", opts: CommitOptions{EmptyLayer: true},
			layers: 1, keepsBase: true, want: f.baseTree, history: []string{"base", "empty"},
		},
		{
			name: "empty-layer-storage", storage: true, opts: CommitOptions{EmptyLayer: true},
			layers: 1, keepsBase: true, want: f.baseTree, history: []string{"base", "empty"},
		},
		{
			name: "empty-layer-extra", opts: CommitOptions{EmptyLayer: true, ExtraImageContent: extra},
			layers: 2, keepsBase: true, want: withTree(f.baseTree, extraTree), history: []string{"base", "empty", "extra"},
		},
		{
			name: "omit-history", opts: CommitOptions{OmitHistory: true},
			layers: 2, keepsBase: true, want: f.tree, history: nil,
		},
		{
			name: "squash-omit-history", opts: CommitOptions{Squash: true, OmitHistory: true},
			layers: 1, want: f.tree, history: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.ManifestType = tc.mtype
			tc.opts.SystemContext = env.sys
			tc.opts.HistoryTimestamp = &stamp
			var dest types.ImageReference
			if tc.storage {
				dest = storeRef(t, env.store, "localhost/"+tc.name+":1")
			} else if tc.mtype == docker.V2S2MediaTypeManifest {
				var err error
				if dest, err = directory.NewReference(env.dir(t, "dir")); err != nil {
					t.Fatal(err)
				}
			} else {
				dest = ociRef(t, env.dir(t, "oci"), "latest")
			}
			res, err := f.b.Commit(env.ctx, dest, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			want := wantImage{Layers: tc.layers}
			if !tc.storage {
				// Every layer, the base image's too, has the commit's
				// compression (the default, gzip).
				want.LayerMediaType = layerMediaType(tc.opts.manifestType(), CompressionGzip)
			}
			img := checkImage(t, dest, want)
			checkResult(t, res, img)
			compareTrees(t, tc.want, img.Tree)
			if len(img.Layers) != tc.layers {
				return
			}
			if tc.keepsBase {
				// The base's tar always; its blob when the compression is the base's.
				if got := img.Layers[0]; got.DiffID != baseLayer.DiffID || (got.MediaType == baseLayer.MediaType && got.Digest != baseLayer.Digest) {
					t.Errorf("layer 0 %s (diffID %s), the base image's %s (%s)", got.Digest, got.DiffID, baseLayer.Digest, baseLayer.DiffID)
				}
			}
			if tc.opts.Squash && hasWhiteouts(img.Layers[0]) {
				t.Errorf("the squashed layer holds whiteouts: %v", img.Layers[0].Entries)
			}
			top := img.Layers[len(img.Layers)-1]
			for _, name := range tc.topHas {
				if _, ok := top.Tree[name]; !ok {
					t.Errorf("the top layer lacks %s (entries %v)", name, top.Entries)
				}
			}
			for _, name := range tc.topHasNot {
				if _, ok := top.Tree[name]; ok {
					t.Errorf("the top layer holds %s", name)
				}
			}

			// The history.
			h := img.Config.History
			if len(h) != len(tc.history) {
				t.Fatalf("history %+v, want %v", h, tc.history)
			}
			for i, want := range tc.history {
				got := h[i]
				switch want {
				case "base", "base(empty)":
					wantEntry := baseHistory[0]
					wantEntry.EmptyLayer = want == "base(empty)"
					if !reflect.DeepEqual(got, wantEntry) {
						t.Errorf("history %d: %+v, want the base's %+v", i, got, wantEntry)
					}
					continue
				case "new":
					if got.CreatedBy != "work step" || got.EmptyLayer {
						t.Errorf("history %d: %+v, want the commit's entry", i, got)
					}
				case "empty":
					if got.CreatedBy != "work step" || !got.EmptyLayer {
						t.Errorf("history %d: %+v, want an empty_layer entry", i, got)
					}
				case "extra":
					if got.EmptyLayer || got.Comment != "extra image content: /etc/app/app.conf /opt/tool/ dir/block" {
						t.Errorf("history %d: %+v, want the extra content's entry", i, got)
					}
				}
				if got.Created == nil || !got.Created.Equal(stamp) {
					t.Errorf("history %d created %v, want %v", i, got.Created, stamp)
				}
			}
		})
	}

	// None of this changed the container.
	if got := mustRead(t, filepath.Join(f.mp, "dir/block")); got != "changed" {
		t.Errorf("the container's dir/block holds %q after the commits", got)
	}
	for _, p := range []string{"opt", "etc"} {
		assertAbsent(t, filepath.Join(f.mp, p))
	}
}

func TestCommitConfigAndManifestOptions(t *testing.T) {
	f := newOptionsFixture(t)
	env := f.env
	dir := env.dir(t, "oci")
	dest := ociRef(t, dir, "latest")
	iid := filepath.Join(env.out, "iid")
	res, err := f.b.Commit(env.ctx, dest, CommitOptions{
		SystemContext:    env.sys,
		UnsetEnv:         []string{"DROP", "NOT_SET"},
		UnsetLabels:      []string{"drop"},
		Annotations:      map[string]string{"org.example.commit": "c"},
		LayerAnnotations: map[string]string{"org.example.layer": "l"},
		AdditionalTags:   []string{"v1", "v1.0"},
		IIDFile:          iid,
	})
	if err != nil {
		t.Fatal(err)
	}
	img := checkImage(t, dest, wantImage{Layers: 2})
	checkResult(t, res, img)
	if env := img.Config.Config.Env; slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "DROP=") }) || !slices.Contains(env, "KEEP=1") {
		t.Errorf("image env %q, want KEEP=1 and no DROP", env)
	}
	if l := img.Config.Config.Labels; l["keep"] != "1" || l["drop"] != "" {
		t.Errorf("image labels %v, want keep and no drop", l)
	}
	// The builder keeps what the image left out.
	if oc := f.b.OCIConfig(); !slices.Contains(oc.Config.Env, "DROP=2") || oc.Config.Labels["drop"] != "2" {
		t.Errorf("builder env %q labels %v after the commit, want DROP and drop kept", oc.Config.Env, oc.Config.Labels)
	}

	m, err := manifest.OCI1FromManifest(img.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"builder.note": "b", "org.example.commit": "c"}; !reflect.DeepEqual(m.Annotations, want) {
		t.Errorf("manifest annotations %v, want %v", m.Annotations, want)
	}
	if a := m.Layers[0].Annotations; a["org.example.layer"] != "" {
		t.Errorf("the base layer got the new layers' annotations: %v", a)
	}
	if a := m.Layers[1].Annotations; a["org.example.layer"] != "l" {
		t.Errorf("the new layer's annotations %v, want org.example.layer", a)
	}

	// The tags name the same manifest in the layout.
	for _, tag := range []string{"v1", "v1.0"} {
		tagged := checkImage(t, ociRef(t, dir, tag), wantImage{Layers: 2})
		if tagged.ManifestDigest != res.ManifestDigest {
			t.Errorf("tag %s: manifest %s, want %s", tag, tagged.ManifestDigest, res.ManifestDigest)
		}
	}
	if got := mustRead(t, iid); got != "sha256:"+img.ConfigDigest.Encoded() || res.ConfigDigest != img.ConfigDigest {
		t.Errorf("iidfile %q, result config %s, want sha256:%s", got, res.ConfigDigest, img.ConfigDigest.Encoded())
	}

	// Into the store, the IID file holds the store's image ID.
	storeIID := filepath.Join(env.out, "iid-store")
	sres, err := f.b.Commit(env.ctx, storeRef(t, env.store, "localhost/opts:1"), CommitOptions{SystemContext: env.sys, IIDFile: storeIID, AdditionalTags: []string{"localhost/opts:2"}})
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, storeRef(t, env.store, "localhost/opts:2"), wantImage{Layers: 2})
	if got := mustRead(t, storeIID); got != "sha256:"+sres.ImageID {
		t.Errorf("iidfile %q, want sha256:%s", got, sres.ImageID)
	}
}

func TestCommitOptionErrors(t *testing.T) {
	f := newOptionsFixture(t)
	env := f.env
	stamp := time.Now()
	hostDir := filepath.Join(env.out, "host")
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	hostFile := filepath.Join(hostDir, "f")
	if err := os.WriteFile(hostFile, []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		opts    CommitOptions
		dest    string // "oci" (default) or "dir"
		wantErr error
		mention string
	}{
		{"two-timestamps", CommitOptions{HistoryTimestamp: &stamp, SourceDateEpoch: &stamp}, "", ErrInvalidOptions, "SourceDateEpoch"},
		{"rewrite-without-epoch", CommitOptions{RewriteTimestamps: true}, "", ErrInvalidOptions, "RewriteTimestamps"},
		{"two-squashes", CommitOptions{Squash: true, SquashNewLayers: true}, "", ErrInvalidOptions, "Squash"},
		{"empty-squash", CommitOptions{Squash: true, EmptyLayer: true}, "", ErrInvalidOptions, "EmptyLayer"},
		{"docker-annotations", CommitOptions{ManifestType: docker.V2S2MediaTypeManifest, Annotations: map[string]string{"a": "b"}}, "", ErrInvalidOptions, "annotations"},
		{"docker-layer-annotations", CommitOptions{ManifestType: docker.V2S2MediaTypeManifest, LayerAnnotations: map[string]string{"a": "b"}}, "", ErrInvalidOptions, "annotations"},
		{"gzip-level", CommitOptions{CompressionLevel: 10}, "", ErrUnsupportedCompression, "gzip level 10"},
		{"zstd-level", CommitOptions{Compression: CompressionZstd, CompressionLevel: 23}, "", ErrUnsupportedCompression, "zstd level 23"},
		{"extra-at-root", CommitOptions{ExtraImageContent: map[string]string{"/": hostDir}}, "", ErrInvalidOptions, `"/"`},
		{"negative-parallelism", CommitOptions{LayerParallelism: -1}, "", ErrInvalidOptions, "LayerParallelism -1"},
		{"negative-retries", CommitOptions{RetryCount: -2}, "", ErrInvalidOptions, "RetryCount -2"},
		{"negative-retry-delay", CommitOptions{RetryDelay: -time.Second}, "", ErrInvalidOptions, "RetryDelay -1s"},
		{"unset-env-with-value", CommitOptions{UnsetEnv: []string{"A=1"}}, "", ErrInvalidOptions, "A=1"},
		{"tags-for-dir", CommitOptions{AdditionalTags: []string{"x"}}, "dir", ErrInvalidOptions, "dir"},
		{"sign-by-gpg", CommitOptions{SignBy: "0123456789ABCDEF"}, "", ErrSigningUnsupported, "0123456789ABCDEF"},
		{"extra-missing", CommitOptions{ExtraImageContent: map[string]string{"/x": filepath.Join(hostDir, "nope")}}, "", os.ErrNotExist, "nope"},
		{"extra-under-a-file", CommitOptions{ExtraImageContent: map[string]string{"/setuid/x": hostFile}}, "", nil, "/setuid is a file in the container"},
		{"extra-under-extra-file", CommitOptions{ExtraImageContent: map[string]string{"/new": hostFile, "/new/x": hostFile}}, "", nil, "/new is not a directory"},
		{"extra-over-a-hard-link", CommitOptions{Squash: true, ExtraImageContent: map[string]string{"/hard-a": hostFile}}, "", ErrInvalidOptions, "hard link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.SystemContext = env.sys
			out := env.dir(t, "out")
			var dest types.ImageReference
			if tc.dest == "dir" {
				var err error
				if dest, err = directory.NewReference(out); err != nil {
					t.Fatal(err)
				}
			} else {
				var err error
				if dest, err = layout.NewReference(out, "latest"); err != nil {
					t.Fatal(err)
				}
			}
			_, err := f.b.Commit(env.ctx, dest, tc.opts)
			if err == nil {
				t.Fatal("commit succeeded")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.mention) || !strings.Contains(err.Error(), "work") {
				t.Errorf("error %q does not mention %q and the container", err, tc.mention)
			}
			assertAbsent(t, out)
			assertEmptyDir(t, env.tmp)
		})
	}
	// ImageRef checks the options as Commit does.
	if _, err := f.b.ImageRef(CommitOptions{Squash: true, SquashNewLayers: true}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("ImageRef with two squashes: %v", err)
	}
}

func TestEmptyLayerFromScratch(t *testing.T) {
	// No base and no layer: an image of config and history only.
	env := newTestEnv(t)
	b, _ := env.newFilledBuilder(t, "work", 3)
	b.SetEnv("ONLY", "config")
	for _, dest := range []types.ImageReference{ociRef(t, env.dir(t, "oci"), "latest"), storeRef(t, env.store, "localhost/config-only:1")} {
		res, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys, EmptyLayer: true})
		if err != nil {
			t.Fatal(err)
		}
		img := checkImage(t, dest, wantImage{Layers: 0})
		checkResult(t, res, img)
		if h := img.Config.History; len(h) != 1 || !h[0].EmptyLayer {
			t.Errorf("history %+v, want one empty_layer entry", h)
		}
		if !slices.Contains(img.Config.Config.Env, "ONLY=config") || len(img.Tree) != 0 {
			t.Errorf("env %q, tree %v: want the config and no files", img.Config.Config.Env, img.Tree)
		}
	}
}
