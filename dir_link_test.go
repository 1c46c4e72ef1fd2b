package bricklayer

import (
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/directory"
	"go.podman.io/image/v5/manifest"
)

// TestCommitLinksBlobsIntoDir commits into a dir: directory, new and
// holding an image, with the temporary directory on the same filesystem:
// the exported blobs are linked in and copy.Image reads none of them back.
// With the temporary directory on another filesystem copy.Image copies them.
func TestCommitLinksBlobsIntoDir(t *testing.T) {
	env := newTestEnv(t)
	b, want := env.newFilledBuilder(t, "work", 31)
	var mu sync.Mutex
	var served []digest.Digest
	testHookGetBlob = func(d digest.Digest) {
		mu.Lock()
		defer mu.Unlock()
		served = append(served, d)
	}
	t.Cleanup(func() { testHookGetBlob = nil })

	commit := func(t *testing.T, path string, wantServed bool) {
		t.Helper()
		ref, err := directory.NewReference(path)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		served = nil
		mu.Unlock()
		res, err := b.Commit(env.ctx, ref, CommitOptions{SystemContext: env.sys})
		if err != nil {
			t.Fatal(err)
		}
		img := checkImage(t, ref, wantImage{Layers: 1})
		checkResult(t, res, img)
		compareTrees(t, want, img.Tree)
		m, err := manifest.FromBlob(res.Manifest, res.ManifestType)
		if err != nil {
			t.Fatal(err)
		}
		layer := m.LayerInfos()[0].Digest
		mu.Lock()
		gotServed := slices.Contains(served, layer)
		mu.Unlock()
		if gotServed != wantServed {
			t.Errorf("copy.Image read the layer's blob from the source: %v, want %v", gotServed, wantServed)
		}
		// The blob is the directory's own: one link, readable by all.
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(path, layer.Encoded()), &st); err != nil {
			t.Fatal(err)
		}
		if st.Nlink != 1 || st.Mode&0o777 != 0o644 {
			t.Errorf("layer blob: %d links, mode %o; want 1, 644", st.Nlink, st.Mode&0o777)
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 4 { // manifest.json, version, config, layer
			t.Errorf("%s holds %d entries, want 4", path, len(entries))
		}
		assertEmptyDir(t, env.tmp)
	}

	path := env.dir(t, "image")
	t.Run("new", func(t *testing.T) { commit(t, path, false) })
	t.Run("replacing", func(t *testing.T) { commit(t, path, false) })
	t.Run("other-filesystem", func(t *testing.T) {
		other := mountTmpfs(t, env.out, "64m")
		env.sys.BigFilesTemporaryDir = other
		t.Setenv("TMPDIR", other)
		defer func() { env.sys.BigFilesTemporaryDir = env.tmp }()
		commit(t, env.dir(t, "image"), true)
		assertEmptyDir(t, other)
	})
}
