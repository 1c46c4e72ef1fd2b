package testutil

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestFillTreeDeterministic: the same seed gives trees the comparer finds
// equal, before and after ChangeTree.
func TestFillTreeDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	t.Cleanup(func() { makeWritable(a); makeWritable(b) })
	FillTree(t, a, 42)
	FillTree(t, b, 42)
	if n := CompareTrees(t, a, b); n != 0 {
		t.Fatalf("two trees of the same seed differ in %d places", n)
	}
	ChangeTree(t, a, 7)
	ChangeTree(t, b, 7)
	if n := CompareTrees(t, a, b); n != 0 {
		t.Fatalf("two changed trees of the same seeds differ in %d places", n)
	}
}

// TestDiffSnapshotsFindsEachKind changes one property at a time and checks
// that the comparer reports that name.
func TestDiffSnapshotsFindsEachKind(t *testing.T) {
	root := t.TempDir()
	t.Cleanup(func() { makeWritable(root) })
	FillTree(t, root, 1)
	want, err := Snapshot(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bin/su", "data/linked", "tmp/fifo", "lib", "var/empty", "usr/share/doc/ünïcødé ☃.txt"} {
		if _, ok := want[name]; !ok {
			t.Errorf("FillTree made no %s", name)
		}
	}
	if e := want["data/triple"]; len(e.Links) != 2 {
		t.Errorf("data/triple has other names %v, want 2", e.Links)
	}
	if e := want["bin/su"]; e.Perm&os.ModeSetuid == 0 {
		t.Errorf("bin/su has mode %v, want setuid", e.Perm)
	}
	edit := func(name string, f func(e *Entry)) func(m map[string]Entry) {
		return func(m map[string]Entry) {
			e := m[name]
			f(&e)
			m[name] = e
		}
	}
	mutations := []struct {
		name   string
		mutate func(m map[string]Entry)
		owners bool
	}{
		{"data/block", edit("data/block", func(e *Entry) { e.SHA256 = strings.Repeat("0", 64) }), false},
		{"data/block", edit("data/block", func(e *Entry) { e.Size++ }), false},
		{"bin/su", edit("bin/su", func(e *Entry) { e.Perm &^= os.ModeSetuid }), false},
		{"lib", edit("lib", func(e *Entry) { e.Target = "usr/lib64" }), false},
		{"tmp/fifo", edit("tmp/fifo", func(e *Entry) { e.Type = 0 }), false},
		{"home/user", edit("home/user", func(e *Entry) { e.UID++ }), true},
		{"data/linked", edit("data/linked", func(e *Entry) { e.Links = nil }), false},
		{"etc/hostname", func(m map[string]Entry) { delete(m, "etc/hostname") }, false},
		{"extra", func(m map[string]Entry) { m["extra"] = Entry{} }, false},
	}
	for _, mu := range mutations {
		got := map[string]Entry{}
		for k, v := range want {
			got[k] = v
		}
		mu.mutate(got)
		diffs := DiffSnapshots(want, got, true)
		if len(diffs) != 1 || !strings.HasPrefix(diffs[0], mu.name+":") {
			t.Errorf("changing %s: differences %q, want one about it", mu.name, diffs)
		}
		if !mu.owners {
			continue
		}
		if diffs := DiffSnapshots(want, got, false); len(diffs) != 0 {
			t.Errorf("changing the owner of %s with owners ignored: differences %q, want none", mu.name, diffs)
		}
	}
}

// TestSnapshotOnDisk: real changes on disk are seen.
func TestSnapshotOnDisk(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	t.Cleanup(func() { makeWritable(a); makeWritable(b) })
	FillTree(t, a, 3)
	FillTree(t, b, 3)
	must(t, os.Chmod(filepath.Join(b, "etc/hostname"), 0o600))
	must(t, os.WriteFile(filepath.Join(b, "data/empty"), []byte("x"), 0o644))
	must(t, os.Remove(filepath.Join(b, "data/dangling")))
	must(t, os.Symlink("elsewhere", filepath.Join(b, "data/dangling")))
	wa, err := Snapshot(a)
	must(t, err)
	wb, err := Snapshot(b)
	must(t, err)
	var names []string
	for _, d := range DiffSnapshots(wa, wb, Owned()) {
		names = append(names, d[:strings.Index(d, ":")])
	}
	if want := []string{"data/dangling", "data/empty", "etc/hostname"}; !slices.Equal(names, want) {
		t.Errorf("differences in %v, want %v", names, want)
	}
}

// makeWritable lets t.TempDir's cleanup remove a tree with read-only
// directories when the test does not run as root.
func makeWritable(root string) {
	_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
}
