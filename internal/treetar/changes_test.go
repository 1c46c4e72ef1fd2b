package treetar

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bricklayer/bricklayer/internal/testutil"
	"go.podman.io/storage/pkg/archive"
	"go.podman.io/storage/pkg/idtools"
	"golang.org/x/sys/unix"
)

// changeList prints changes one a line, sorted, for comparison.
func changeList(changes []archive.Change) []string {
	out := make([]string, 0, len(changes))
	for _, c := range changes {
		out = append(out, c.Kind.String()+" "+c.Path)
	}
	slices.Sort(out)
	return out
}

// assertSameChanges fails unless the two lists hold the same changes.
func assertSameChanges(t *testing.T, want, got []archive.Change) {
	t.Helper()
	w, g := changeList(want), changeList(got)
	if len(slices.Compact(slices.Clone(g))) != len(g) {
		t.Errorf("treetar lists a change twice")
	}
	for _, c := range w {
		if !slices.Contains(g, c) {
			t.Errorf("treetar misses %s", c)
		}
	}
	for _, c := range g {
		if !slices.Contains(w, c) {
			t.Errorf("treetar adds %s", c)
		}
	}
	if t.Failed() {
		t.Fatalf("containers/storage finds %d changes, treetar %d", len(w), len(g))
	}
}

// copyTree copies the tree at src to dst as the vfs driver makes a layer:
// every file copied, with its owner, mode, times and attributes.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
}

// changePair makes an old tree and a new one changed from a copy of it in
// every way a comparison looks at, and returns their roots.
func changePair(t *testing.T, seed uint64) (newDir, oldDir string) {
	t.Helper()
	base := t.TempDir()
	oldDir, newDir = filepath.Join(base, "old"), filepath.Join(base, "new")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(oldDir, 0o755))
	testutil.FillTree(t, oldDir, seed)
	old := func(p string) string { return filepath.Join(oldDir, p) }
	must(os.MkdirAll(old("c/dir-to-file/sub"), 0o755))
	must(os.MkdirAll(old("c/dir-to-dev/sub"), 0o755))
	must(os.MkdirAll(old("c/removed-dir/sub"), 0o755))
	must(os.MkdirAll(old("c/same/deeper"), 0o755))
	for _, p := range []string{"c/dir-to-file/sub/f", "c/dir-to-dev/f", "c/removed-dir/sub/f", "c/file-to-dir", "c/xattr-added",
		"c/xattr-changed", "c/cap-added", "c/same/deeper/f", "c/mode", "c/owner", "c/mtime", "c/subsecond", "c/samesize"} {
		must(os.WriteFile(old(p), []byte("old "+p), 0o644))
	}
	must(unix.Setxattr(old("c/xattr-changed"), "user.v", []byte("one"), 0))
	must(os.Symlink("target-one", old("c/link")))
	sec := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	must(os.Chtimes(old("c/subsecond"), sec, sec))
	must(os.Chtimes(old("c/samesize"), sec, sec))

	copyTree(t, oldDir, newDir)
	nw := func(p string) string { return filepath.Join(newDir, p) }
	testutil.ChangeTree(t, newDir, seed)
	must(os.RemoveAll(nw("c/dir-to-file")))
	must(os.WriteFile(nw("c/dir-to-file"), []byte("now a file"), 0o644))
	must(os.RemoveAll(nw("c/dir-to-dev")))
	must(unix.Mknod(nw("c/dir-to-dev"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 1))))
	must(os.RemoveAll(nw("c/removed-dir")))
	must(os.Remove(nw("c/file-to-dir")))
	must(os.MkdirAll(nw("c/file-to-dir/a/b"), 0o755))
	must(os.WriteFile(nw("c/file-to-dir/a/b/f"), nil, 0o644))
	must(os.MkdirAll(nw("c/added/x/y"), 0o755))
	must(os.WriteFile(nw("c/added/x/y/z"), []byte("z"), 0o644))
	must(unix.Setxattr(nw("c/xattr-added"), "user.new", []byte("v"), 0))
	must(unix.Setxattr(nw("c/xattr-changed"), "user.v", []byte("two"), 0))
	must(unix.Setxattr(nw("c/cap-added"), xattrCap, capability(2, 0), 0))
	// Attribute and link changes, with mtimes set back, are found by the
	// comparison of attributes and targets alone.
	for _, p := range []string{"c/xattr-added", "c/xattr-changed", "c/cap-added"} {
		fi, err := os.Stat(old(p))
		must(err)
		must(os.Chtimes(nw(p), fi.ModTime(), fi.ModTime()))
	}
	must(os.Remove(nw("c/link")))
	must(os.Symlink("target-two", nw("c/link")))
	var lst unix.Stat_t
	must(unix.Lstat(old("c/link"), &lst))
	must(unix.UtimesNanoAt(unix.AT_FDCWD, nw("c/link"), []unix.Timespec{lst.Atim, lst.Mtim}, unix.AT_SYMLINK_NOFOLLOW))
	must(os.Chmod(nw("c/mode"), 0o600))
	must(os.Lchown(nw("c/owner"), 7, 7))
	later := time.Now().Add(time.Hour)
	must(os.Chtimes(nw("c/mtime"), later, later))
	// The same second with a finer part on one side only is no change.
	must(os.Chtimes(nw("c/subsecond"), sec.Add(300*time.Millisecond), sec.Add(300*time.Millisecond)))
	// Rewritten with its size and mtime kept: missed by the comparison.
	must(os.WriteFile(nw("c/samesize"), []byte("new c/samesize"), 0o644))
	must(os.Chtimes(nw("c/samesize"), sec, sec))
	// The same inode in both trees is not compared, changed or not.
	must(os.Remove(nw("c/same/deeper/f")))
	must(os.Link(old("c/same/deeper/f"), nw("c/same/deeper/f")))
	must(os.Chmod(nw("c/same/deeper/f"), 0o700))
	return newDir, oldDir
}

// Changes finds what containers/storage's ChangesDirs finds.
func TestChangesSameAsContainersStorage(t *testing.T) {
	requireRoot(t)
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			newDir, oldDir := changePair(t, seed)
			want, err := archive.ChangesDirs(newDir, &idtools.IDMappings{}, oldDir, &idtools.IDMappings{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := Changes(t.Context(), newDir, oldDir, ChangesOptions{})
			if err != nil {
				t.Fatal(err)
			}
			assertSameChanges(t, want, got)
			list := strings.Join(changeList(got), "\n")
			for _, c := range []string{"A /c/added/x/y/z", "C /c/xattr-added", "C /c/xattr-changed", "C /c/cap-added", "C /c/link",
				"C /c/mode", "C /c/owner", "C /c/mtime", "D /c/removed-dir", "C /c/dir-to-file", "D /c/dir-to-dev/f", "A /c/file-to-dir/a/b/f", "C /c"} {
				if !strings.Contains(list+"\n", c+"\n") {
					t.Errorf("no %q in:\n%s", c, list)
				}
			}
			for _, c := range []string{"/c/subsecond", "/c/samesize", "/c/same/deeper/f", "D /c/removed-dir/"} {
				if strings.Contains(list, c) {
					t.Errorf("%q in:\n%s", c, list)
				}
			}
			if !slices.IsSortedFunc(got, func(a, b archive.Change) int { return strings.Compare(a.Path, b.Path) }) {
				t.Errorf("changes not sorted by path")
			}
		})
	}
}

// With ID mappings, owners are compared as the container sees them.
func TestChangesSameAsContainersStorageMapped(t *testing.T) {
	requireRoot(t)
	newDir, oldDir := changePair(t, 3)
	// The old tree as the container sees it; the new one shifted into a
	// user namespace's range, but for one owner changed.
	const base = 100000
	ids := idtools.NewIDMappingsFromMaps([]idtools.IDMap{{ContainerID: 0, HostID: base, Size: 1 << 20}}, []idtools.IDMap{{ContainerID: 0, HostID: base, Size: 1 << 20}})
	if err := filepath.Walk(newDir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		uid := base + int(st.Uid)
		if strings.HasSuffix(p, "/c/mode") {
			uid++
		}
		return os.Lchown(p, uid, base+int(st.Gid))
	}); err != nil {
		t.Fatal(err)
	}
	want, err := archive.ChangesDirs(newDir, ids, oldDir, &idtools.IDMappings{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Changes(t.Context(), newDir, oldDir, ChangesOptions{NewIDs: ids})
	if err != nil {
		t.Fatal(err)
	}
	assertSameChanges(t, want, got)
	wantStream, gotStream := writtenChanges(t, newDir, got, ids)
	assertSameStream(t, wantStream, gotStream)
}

// ChangedSince adds the files whose ctime is later, with their
// directories, as the ctime check did in a second walk.
func TestChangesSince(t *testing.T) {
	requireRoot(t)
	newDir, oldDir := changePair(t, 4)
	since := time.Now()
	time.Sleep(20 * time.Millisecond)
	// Rewritten with its size and mtime kept, after since.
	p := filepath.Join(newDir, "c/same/deeper")
	if err := os.Remove(filepath.Join(p, "f")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "f"), []byte("new c/same/deeper/f"), 0o644); err != nil {
		t.Fatal(err)
	}
	old, err := os.Stat(filepath.Join(oldDir, "c/same/deeper/f"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(p, "f"), old.ModTime(), old.ModTime()); err != nil {
		t.Fatal(err)
	}
	plain, err := Changes(t.Context(), newDir, oldDir, ChangesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Changes(t.Context(), newDir, oldDir, ChangesOptions{ChangedSince: since})
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(plain),
		archive.Change{Path: "/c/same/deeper/f", Kind: archive.ChangeModify},
		archive.Change{Path: "/c/same/deeper", Kind: archive.ChangeModify},
		archive.Change{Path: "/c/same", Kind: archive.ChangeModify})
	assertSameChanges(t, want, got)
}

// writtenChanges is the normalised stream of WriteChanges and of
// containers/storage's ExportChanges for changes in the tree newDir.
func writtenChanges(t *testing.T, newDir string, changes []archive.Change, ids *idtools.IDMappings) (want, got []byte) {
	t.Helper()
	var uids, gids []idtools.IDMap
	if ids != nil {
		uids, gids = ids.UIDs(), ids.GIDs()
	}
	before := slices.Clone(changes)
	got = normalized(t, ChangesReader(t.Context(), newDir, changes, Options{IDMappings: ids}))
	if !slices.Equal(before, changes) {
		t.Errorf("WriteChanges reordered its list")
	}
	rc, err := archive.ExportChanges(newDir, slices.Clone(changes), uids, gids)
	if err != nil {
		t.Fatal(err)
	}
	return normalized(t, rc), got
}

// changedTree makes a pair of trees changed in every way (changePair),
// adds files of every kind and a path longer than PATH_MAX to the new one,
// and returns it with its changes.
func changedTree(t *testing.T, seed uint64) (string, []archive.Change) {
	t.Helper()
	newDir, oldDir := changePair(t, seed)
	extras(t, newDir)
	testutil.DeepPath(t, newDir, 20, 250)
	changes, err := Changes(t.Context(), newDir, oldDir, ChangesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return newDir, changes
}

// WriteChanges writes what containers/storage's ExportChanges writes, for
// the changes of trees changed in every way, with files of every kind and a
// path longer than PATH_MAX added.
func TestWriteChangesSameAsContainersStorage(t *testing.T) {
	requireRoot(t)
	newDir, changes := changedTree(t, 5)
	want, got := writtenChanges(t, newDir, changes, nil)
	assertSameStream(t, want, got)
	list := strings.Join(listing(t, got), "\n")
	for _, name := range []string{`"c/.wh.removed-dir"`, `"c/dir-to-file"`, `"x/linked-too"`, `"c/added/x/y/z"`, `"c/"`} {
		if !strings.Contains(list, name) {
			t.Errorf("the stream lacks %s", name)
		}
	}
}

// A directory on a change's path turned into a link fails the stream,
// naming the change, and nothing outside the tree is read.
func TestWriteChangesThroughALink(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "f"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "d")); err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	err := WriteChanges(t.Context(), &buf, root, []archive.Change{{Path: "/d/f", Kind: archive.ChangeModify}}, Options{})
	if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), `"/d/f"`) {
		t.Errorf("changes through a link: %v, want ErrChanged naming /d/f", err)
	}
	if strings.Contains(buf.String(), "secret") {
		t.Errorf("the stream holds a file outside the tree")
	}
}
