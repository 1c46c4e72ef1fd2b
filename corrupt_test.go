package bricklayer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.podman.io/image/v5/types"
)

// A store corrupted under the builder: the base image's layer lost its
// files, or they no longer hold what the layer's recorded digest says. The
// commit fails with an error naming the layer, or, where the commit does not
// read the layer again (a commit into the same store reuses it), Verify of
// the result reports the mismatch. failure_test.go covers the container's
// own layer and a layer missing from the store's records.
//
// A file added to a layer's directory is not seen: the store rebuilds a
// layer's diff from its recorded tar-split and reads only the files it
// lists, so the image holds the layer as recorded (TestCommitIgnoresFileAddedToBaseLayer).

// newBuilderOnBase commits a filled builder into the store as
// localhost/base:latest and returns a builder made from it, with a file of
// its own, and the base image's top layer ID.
func (env *testEnv) newBuilderOnBase(t *testing.T) (*Builder, string) {
	t.Helper()
	env.commitBase(t, "base", "localhost/base:latest", 40)
	b, mp := env.newMountedBuilder(t, "localhost/base:latest", "work")
	if err := os.WriteFile(filepath.Join(mp, "new-file"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := env.store.Image("localhost/base:latest")
	if err != nil {
		t.Fatal(err)
	}
	return b, img.TopLayer
}

// vfsLayerDir is where the vfs driver keeps layer id's files.
func vfsLayerDir(t *testing.T, env *testEnv, id string) string {
	t.Helper()
	dir := filepath.Join(env.store.GraphRoot(), "vfs", "dir", id)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the vfs layer directory is not where expected: %v", err)
	}
	return dir
}

func TestCommitCorruptedBaseLayer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, dir string)
	}{
		{"files-removed", func(t *testing.T, dir string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}},
		{"content-changed-same-size", func(t *testing.T, dir string) {
			// One byte of a file: the tar stream has the same length and
			// headers, and another digest.
			flipByte(t, filepath.Join(dir, "dir", "block"), 100)
		}},
		{"content-truncated", func(t *testing.T, dir string) {
			if err := os.Truncate(filepath.Join(dir, "dir", "block"), 10); err != nil {
				t.Fatal(err)
			}
		}},
		{"content-changed-size", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "one"), []byte("longer than one byte"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			b, baseLayer := env.newBuilderOnBase(t)
			tc.corrupt(t, vfsLayerDir(t, env, baseLayer))

			// To a layout, the base layer is read again: the commit fails
			// and names it, or the image it wrote fails Verify.
			layoutDir := env.dir(t, "oci")
			dest := ociRef(t, layoutDir, "latest")
			_, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys})
			t.Logf("commit to a layout: %v", err)
			if err != nil {
				if !strings.Contains(err.Error(), "work") || !mentionsLayer(err.Error(), env, baseLayer) {
					t.Errorf("commit: %q does not name the container and the corrupted layer %s", err, baseLayer)
				}
				assertAbsent(t, layoutDir)
			} else {
				assertVerifyFails(t, dest, nil)
			}
			assertEmptyDir(t, env.tmp)

			// Into the same store, the base layer is reused, not read: the
			// commit may succeed, and Verify of the result must not.
			storeDest := storeRef(t, env.store, "localhost/result:latest")
			_, err = b.Commit(env.ctx, storeDest, CommitOptions{SystemContext: env.sys})
			t.Logf("commit into the store: %v", err)
			if err != nil {
				if !strings.Contains(err.Error(), "work") {
					t.Errorf("commit: %q does not name the container", err)
				}
			} else {
				assertVerifyFails(t, storeDest, nil)
			}
			assertEmptyDir(t, env.tmp)
		})
	}
}

// mentionsLayer is true when msg names layer id, or a blob digest the
// store records for it.
func mentionsLayer(msg string, env *testEnv, id string) bool {
	if strings.Contains(msg, id) {
		return true
	}
	l, err := env.store.Layer(id)
	if err != nil {
		return false
	}
	for _, d := range []string{l.UncompressedDigest.String(), l.CompressedDigest.String()} {
		if d != "" && strings.Contains(msg, d) {
			return true
		}
	}
	return false
}

// assertVerifyFails fails the test unless Verify reports a problem with ref
// or fails to read it.
func assertVerifyFails(t *testing.T, ref types.ImageReference, sys *types.SystemContext) {
	t.Helper()
	report, err := Verify(t.Context(), ref, sys)
	if err != nil {
		t.Logf("verify: %v", err)
		return
	}
	if report.OK() {
		t.Errorf("verify finds nothing wrong with %s, made from a corrupted layer", ref.StringWithinTransport())
	}
	for _, p := range report.Problems {
		t.Logf("verify: %s", p)
	}
}

func TestCommitIgnoresFileAddedToBaseLayer(t *testing.T) {
	env := newTestEnv(t)
	b, baseLayer := env.newBuilderOnBase(t)
	if err := os.WriteFile(filepath.Join(vfsLayerDir(t, env, baseLayer), "intruder"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	dest := ociRef(t, env.dir(t, "oci"), "latest")
	if _, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys}); err != nil {
		t.Fatal(err)
	}
	img := checkImage(t, dest, wantImage{Layers: 2})
	if _, ok := img.Tree["intruder"]; ok {
		t.Error("a file added behind the store's back is in the image")
	}
	if _, ok := img.Tree["new-file"]; !ok {
		t.Error("the container's own file is missing from the image")
	}
}
