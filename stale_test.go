package bricklayer

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// age makes path look made long enough ago to be a leftover.
func age(t *testing.T, path string) {
	t.Helper()
	old := time.Now().Add(-2 * staleAge)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

// TestCommitClearsKilledCommitsLeftovers lays out what commits killed
// outright leave (their cleanup never ran), beside what live commits and
// others hold, and checks that the next commits remove the leftovers alone.
func TestCommitClearsKilledCommitsLeftovers(t *testing.T) {
	env := newTestEnv(t)
	b, _ := env.newFilledBuilder(t, "work", 38)
	opts := CommitOptions{SystemContext: env.sys}

	t.Run("temporary-directories", func(t *testing.T) {
		// A killed commit's export directory, a live one's (locked), and a
		// directory of the same pattern that is not ours.
		mk := func(name string, marked bool) string {
			dir := filepath.Join(env.tmp, name)
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			writeRandomFile(t, filepath.Join(dir, ".layer-1.partial"), 1<<16)
			if marked {
				if err := os.WriteFile(filepath.Join(dir, exportDirLock), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			age(t, dir)
			return dir
		}
		dead, live, other := mk("bricklayer-111", true), mk("bricklayer-222", true), mk("bricklayer-notes", false)
		release, err := holdPath(filepath.Join(live, exportDirLock))
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		// A dir: destination is exported through the temporary directory.
		if _, err := b.Commit(env.ctx, dirRef(t, env.dir(t, "dir")), opts); err != nil {
			t.Fatal(err)
		}
		assertAbsent(t, dead)
		for _, kept := range []string{live, other} {
			if _, err := os.Stat(kept); err != nil {
				t.Errorf("%s was removed: %v", kept, err)
			}
		}
		release()
		os.RemoveAll(live)
		os.RemoveAll(other)
		assertEmptyDir(t, env.tmp)
	})

	t.Run("layout-partial-blob", func(t *testing.T) {
		layout := env.dir(t, "layout")
		if _, err := b.Commit(env.ctx, ociRef(t, layout, "a"), opts); err != nil {
			t.Fatal(err)
		}
		partial := filepath.Join(layout, "blobs", "sha256", ".layer-123.partial")
		writeRandomFile(t, partial, 1<<16)
		if _, err := b.Commit(env.ctx, ociRef(t, layout, "b"), opts); err != nil {
			t.Fatal(err)
		}
		assertAbsent(t, partial)
	})

	t.Run("archive-partial-file", func(t *testing.T) {
		dir := env.dir(t, "archives")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		dead, live := filepath.Join(dir, ".image.tar.partial-1"), filepath.Join(dir, ".image.tar.partial-2")
		for _, p := range []string{dead, live} {
			writeRandomFile(t, p, 1<<16)
			age(t, p)
		}
		release, err := holdPath(live)
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		if _, err := b.Commit(env.ctx, parseRef(t, "oci-archive:"+filepath.Join(dir, "image.tar")+":x"), opts); err != nil {
			t.Fatal(err)
		}
		if got := listFiles(t, dir); !slices.Equal(got, []string{".image.tar.partial-2", "image.tar"}) {
			t.Errorf("%s holds %v, want the archive and the live commit's file", dir, got)
		}
		if fi, err := os.Stat(filepath.Join(dir, "image.tar")); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("the archive: %v, %v, want mode 0644", fi, err)
		}
	})

	t.Run("dir-image-kept", func(t *testing.T) {
		// A commit to a dir: directory holding an image was killed once
		// containers/image had emptied it: the next commit to it finds the
		// image kept beside it, and puts it back before anything else.
		dir := filepath.Join(env.dir(t, "dirs"), "image")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		ref := dirRef(t, dir)
		if _, err := b.Commit(env.ctx, ref, opts); err != nil {
			t.Fatal(err)
		}
		before := fileContents(t, dir)
		kept, err := linkFilesBeside(dir)
		if err != nil {
			t.Fatal(err)
		}
		removeAdded(dir, nil)
		undo, release, err := claimLocalDestination(env.ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		undo()
		release()
		if after := fileContents(t, dir); !maps.Equal(after, before) {
			t.Errorf("the directory holds %v, want the image it held, %v", after, before)
		}
		assertAbsent(t, kept)
		checkImage(t, ref, wantImage{Layers: 1})
	})
}

// TestLeftoverClearingIsCareful: a FIFO planted as an export directory's
// lock file is neither waited on nor removed; and names with glob
// characters are matched as they are, so clearing one layout's leftovers
// leaves alone those of a layout whose name the first one's would match.
func TestLeftoverClearingIsCareful(t *testing.T) {
	parent := t.TempDir()
	planted := filepath.Join(parent, "bricklayer-planted")
	if err := os.Mkdir(planted, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(planted, exportDirLock), 0o666); err != nil {
		t.Fatal(err)
	}
	age(t, planted)
	done := make(chan error, 1)
	go func() {
		dir, release, err := makeExportDir(parent)
		if err == nil {
			os.RemoveAll(dir)
			release()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("making an export directory waited on a planted FIFO")
	}
	if _, err := os.Stat(planted); err != nil {
		t.Errorf("the planted directory was removed: %v", err)
	}

	base := t.TempDir()
	live := filepath.Join(base, "layout1", "blobs", "sha256", ".layer-7.partial")
	if err := os.MkdirAll(filepath.Dir(live), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(live, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	clearLayoutLeftovers(filepath.Join(base, "layout[12]"))
	clearDirLeftovers(filepath.Join(base, "layout?"))
	if _, err := os.Stat(live); err != nil {
		t.Errorf("clearing layout[12] removed layout1's blob: %v", err)
	}
}
