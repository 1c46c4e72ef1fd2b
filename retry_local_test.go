package bricklayer

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/transports/alltransports"
)

// TestCommitRetriesIntoLocalDestination commits, to each local transport,
// a container whose base layer is served from the registry it was pulled
// from, through a proxy that fails the first read of that layer after
// copy.Image has written the new layer to the destination. The retry must
// find the destination as it was before the failed try: containers/image
// refuses a dir: directory holding a blob and no version file.
func TestCommitRetriesIntoLocalDestination(t *testing.T) {
	reg := startRegistry(t, t.TempDir())
	env := newTestEnv(t)
	sys := reg.sys(t, env.sys)

	a, _ := env.newFilledBuilder(t, "base", 21)
	baseRes, err := a.Commit(env.ctx, reg.ref(t, "retried-base:1"), CommitOptions{SystemContext: sys})
	if err != nil {
		t.Fatalf("pushing the base image: %v", err)
	}
	baseManifest, err := manifest.FromBlob(baseRes.Manifest, baseRes.ManifestType)
	if err != nil {
		t.Fatal(err)
	}
	baseBlob := "/blobs/" + baseManifest.LayerInfos()[0].Digest.String()

	// The proxy fails one read of the base layer when armed: it answers
	// 500 after a pause, long enough for the new layer to be written.
	upstream, err := url.Parse("http://" + reg.addr)
	if err != nil {
		t.Fatal(err)
	}
	forward := httputil.NewSingleHostReverseProxy(upstream)
	var armed atomic.Bool
	var failed atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, baseBlob) && armed.CompareAndSwap(true, false) {
			time.Sleep(300 * time.Millisecond)
			failed.Add(1)
			http.Error(w, "injected failure", http.StatusInternalServerError)
			return
		}
		forward.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	proxyAddr := strings.TrimPrefix(proxy.URL, "http://")

	b, err := NewBuilder(env.ctx, env.store, BuilderOptions{FromImage: "docker://" + proxyAddr + "/retried-base:1", SystemContext: sys, Container: "retried"})
	if err != nil {
		t.Fatal(err)
	}
	mp, err := b.Mount()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mp, "added"), []byte("new layer"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := b.Unmount(); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, dest string
		exists     bool // dest holds an image of the same transport already
	}{
		{"dir", "dir:" + env.dir(t, "image"), false},
		{"dir-replaced", "dir:" + env.dir(t, "image"), true},
		{"oci", "oci:" + env.dir(t, "layout") + ":1", false},
		{"oci-archive", "oci-archive:" + env.dir(t, "image.tar") + ":1", false},
		{"docker-archive", "docker-archive:" + env.dir(t, "image.tar") + ":retried:1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest, err := alltransports.ParseImageName(tc.dest)
			if err != nil {
				t.Fatal(err)
			}
			opts := CommitOptions{SystemContext: sys, RetryCount: 2, RetryDelay: 10 * time.Millisecond}
			if tc.exists {
				if _, err := b.Commit(env.ctx, dest, opts); err != nil {
					t.Fatalf("first commit: %v", err)
				}
			}
			failed.Store(0)
			armed.Store(true)
			res, err := b.Commit(env.ctx, dest, opts)
			armed.Store(false)
			if failed.Load() != 1 {
				t.Fatalf("the proxy failed %d reads of the base layer, want 1 (commit: %v)", failed.Load(), err)
			}
			if err != nil {
				t.Fatalf("commit with a retry: %v", err)
			}
			img := checkImageWith(t, dest, sys, wantImage{Layers: 2})
			if tc.name == "docker-archive" {
				// Its reader makes a manifest of its own; the config is ours.
				if img.ConfigDigest != res.ConfigDigest {
					t.Errorf("commit returned config %s, the archive holds %s", res.ConfigDigest, img.ConfigDigest)
				}
			} else {
				checkResult(t, res, img)
			}
			if tc.name == "dir" || tc.name == "dir-replaced" {
				// Nothing from the failed try is left beside the image.
				path := strings.TrimPrefix(tc.dest, "dir:")
				entries, err := os.ReadDir(path)
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				m, err := manifest.FromBlob(res.Manifest, res.ManifestType)
				if err != nil {
					t.Fatal(err)
				}
				want := []string{"manifest.json", "version", m.ConfigInfo().Digest.Encoded()}
				for _, l := range m.LayerInfos() {
					want = append(want, l.Digest.Encoded())
				}
				if !slices.Equal(slices.Sorted(slices.Values(names)), slices.Sorted(slices.Values(want))) {
					t.Errorf("%s holds %v, want %v", path, names, want)
				}
			}
		})
	}
}
