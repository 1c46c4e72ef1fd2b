package bricklayer

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
	"golang.org/x/sys/unix"
)

// The same with the overlay driver making its diffs by comparing trees, as
// it does with metacopy on. containers/storage decides that once per
// process, for the first overlay store, so the test runs in a process of
// its own.
func TestCommitFindsFilesRewrittenInPlaceNaiveOverlay(t *testing.T) {
	if os.Getenv("BRICKLAYER_TEST_NAIVE_OVERLAY") == "" {
		cmd := exec.Command(os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.v")
		cmd.Env = append(os.Environ(), "BRICKLAYER_TEST_NAIVE_OVERLAY=1")
		out, err := cmd.CombinedOutput()
		t.Logf("in its own process:\n%s", out)
		if err != nil {
			t.Fatalf("the test in its own process: %v", err)
		}
		return
	}
	for _, dest := range []string{"layout", "store", "squash-new-layers"} {
		t.Run(dest, func(t *testing.T) {
			testCommitFindsFilesRewrittenInPlace(t, "overlay-naive", dest)
		})
	}
}

// newNaiveOverlayStore opens an overlay store whose driver makes diffs by
// comparing trees, as it does when metacopy is on.
func newNaiveOverlayStore(t *testing.T) storage.Store {
	t.Helper()
	store := newTestStoreAt(t, t.TempDir(), "overlay", "overlay.mountopt=nodev,metacopy=on")
	status, err := store.Status()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(status, [2]string{"Native Overlay Diff", "false"}) {
		t.Skipf("the overlay driver makes its diffs natively here even with metacopy on: %v", status)
	}
	return store
}

// A file rewritten with its size and mtime kept (cp -p, tar, rsync -t, or a
// build clamping every mtime to SOURCE_DATE_EPOCH) is in the new layer with
// its new content, whatever the driver and the destination; the vfs driver's
// comparison of the two trees alone misses it. A file left alone is not.
func TestCommitFindsFilesRewrittenInPlace(t *testing.T) {
	for _, driver := range []string{"vfs", "overlay"} {
		for _, dest := range []string{"layout", "store", "squash-new-layers"} {
			t.Run(driver+"/"+dest, func(t *testing.T) {
				testCommitFindsFilesRewrittenInPlace(t, driver, dest)
			})
		}
	}
}

func testCommitFindsFilesRewrittenInPlace(t *testing.T, driver, dest string) {
	ctx := context.Background()
	var store storage.Store
	if driver == "overlay-naive" {
		store = newNaiveOverlayStore(t)
	} else {
		store = newTestStoreWith(t, driver)
	}
	epoch := time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)
	base, err := NewBuilder(ctx, store, BuilderOptions{FromImage: Scratch, Container: "base"})
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, builderRoot(t, base), epoch, map[string]string{
		"etc/conf": "aaaa", "etc/keep": "kept", "linked": "cccc", "bin/tool": "old tool",
	})
	if err := os.Link(filepath.Join(builderRoot(t, base), "linked"), filepath.Join(builderRoot(t, base), "etc/linked2")); err != nil {
		t.Fatal(err)
	}
	b, mp := deriveFrom(t, store, base)
	// Rewritten in place, as cp -p or tar x would: same size, same mtime.
	for name, content := range map[string]string{"etc/conf": "bbbb", "linked": "dddd"} {
		p := filepath.Join(mp, filepath.FromSlash(name))
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, epoch, epoch); err != nil {
			t.Fatal(err)
		}
	}
	// Replaced by a new file of the same size and mtime.
	tool := filepath.Join(mp, "bin/tool")
	if err := os.Remove(tool); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tool, []byte("new tool"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"bin/tool", "bin"} {
		if err := os.Chtimes(filepath.Join(mp, p), epoch, epoch); err != nil {
			t.Fatal(err)
		}
	}
	// What the container holds now; with overlay, linked and etc/linked2
	// are no longer one file once linked is rewritten.
	want := map[string]string{}
	for _, name := range []string{"etc/conf", "etc/keep", "linked", "etc/linked2", "bin/tool"} {
		want[name] = mustRead(t, filepath.Join(mp, filepath.FromSlash(name)))
	}
	changed := []string{"etc/conf", "linked", "bin/tool"}
	if want["etc/linked2"] == "dddd" {
		changed = append(changed, "etc/linked2")
	}

	layoutDir := filepath.Join(t.TempDir(), "oci")
	ref, err := layout.ParseReference(layoutDir + ":derived")
	if err != nil {
		t.Fatal(err)
	}
	opts := CommitOptions{Compression: CompressionNone}
	var target types.ImageReference = ref
	switch dest {
	case "store":
		target = storeRef(t, store, "localhost/derived:latest")
	case "squash-new-layers":
		opts.SquashNewLayers = true
	}
	if _, err := b.Commit(ctx, target, opts); err != nil {
		t.Fatal(err)
	}
	if dest == "store" {
		copyImage(t, ctx, ref, target, nil)
	}
	layers := readOCILayers(t, layoutDir)
	if len(layers) != 2 {
		t.Fatalf("image has %d layers, want base + 1", len(layers))
	}
	names := tarNames(t, layers[1])
	t.Logf("top layer: %v", names)
	for _, name := range changed {
		if !slices.Contains(names, name) {
			t.Errorf("the top layer lacks %s, rewritten with its size and mtime kept", name)
		}
	}
	if slices.Contains(names, "etc/keep") {
		t.Errorf("the top layer holds etc/keep, which did not change")
	}
	unpacked := t.TempDir()
	for i, l := range layers {
		if err := applyTestLayer(unpacked, l); err != nil {
			t.Fatalf("applying layer %d: %v", i, err)
		}
	}
	for name, w := range want {
		if got := mustRead(t, filepath.Join(unpacked, filepath.FromSlash(name))); got != w {
			t.Errorf("%s: the image has %q, the container %q", name, got, w)
		}
	}
}

// After waitPastCtime(dir, t), a file changed at once gets a ctime later
// than t, although the kernel stamps ctimes from a clock that lags
// time.Now.
func TestWaitPastCtime(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	for i := range 20 {
		since := time.Now()
		if err := waitPastCtime(dir, since); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(f, &st); err != nil {
			t.Fatal(err)
		}
		if ctime := time.Unix(st.Ctim.Sec, st.Ctim.Nsec); !ctime.After(since) {
			t.Fatalf("a file written after waitPastCtime(%s) has ctime %s", since.Format(time.RFC3339Nano), ctime.Format(time.RFC3339Nano))
		}
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 1 {
		t.Errorf("the directory holds %v (%v), want f alone: the probe left behind", entries, err)
	}
}
