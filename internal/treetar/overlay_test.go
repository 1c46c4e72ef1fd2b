package treetar

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bricklayer/bricklayer/internal/testutil"
	"go.podman.io/storage/pkg/archive"
	"go.podman.io/storage/pkg/idtools"
	"golang.org/x/sys/unix"
)

// overlayLayers makes the diff directories of an overlay layer (upper)
// and of two layers below it (lowers, nearest first), with the cases of
// whiteouts and opaque directories the diff must tell apart. It returns
// which opaque directories hide something below (want) and which do not.
// deep adds a path longer than PATH_MAX.
func overlayLayers(t *testing.T, seed uint64, deep bool) (upper string, lowers []string, want, not []string) {
	t.Helper()
	upper, l1, l2 := t.TempDir(), t.TempDir(), t.TempDir()
	testutil.FillTree(t, upper, seed)
	extras(t, upper)
	if deep {
		testutil.DeepPath(t, upper, 20, 250)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mkdir := func(dir string, names ...string) {
		for _, n := range names {
			must(os.MkdirAll(filepath.Join(dir, n), 0o755))
		}
	}
	whiteout := func(dir, name string) {
		must(unix.Mknod(filepath.Join(dir, name), unix.S_IFCHR, 0))
	}
	opaque := func(name, value string) {
		must(os.MkdirAll(filepath.Join(upper, name), 0o750))
		must(unix.Setxattr(filepath.Join(upper, name), archive.GetOverlayXattrName("opaque"), []byte(value), 0))
		must(os.WriteFile(filepath.Join(upper, name, "kept"), []byte(name), 0o644))
	}

	// Whiteouts, three of them one inode, as the kernel shares them.
	whiteout(upper, "wo-a")
	must(os.Link(filepath.Join(upper, "wo-a"), filepath.Join(upper, "wo-b")))
	must(os.Link(filepath.Join(upper, "wo-a"), filepath.Join(upper, "x", "wo-c")))
	whiteout(upper, "wo-own")
	// A device that is not a whiteout stays a device.
	must(unix.Mknod(filepath.Join(upper, "x", "dev-0-1"), unix.S_IFCHR|0o600, int(unix.Mkdev(0, 1))))

	mkdir(l1, "op-in-l1", "real/op", "op-n", "op-yy")
	mkdir(l2, "op-in-l2", "op-wo", "gone/op-under", "op-new-parent")
	must(os.WriteFile(filepath.Join(l1, "op-file"), nil, 0o644))
	whiteout(l1, "op-wo")
	whiteout(l1, "gone")
	must(os.Symlink("real", filepath.Join(l1, "lnk")))
	must(os.Symlink("/../../real", filepath.Join(l1, "abs")))

	want = []string{"op-in-l1", "op-in-l2", "op-file", "lnk/op", "abs/op"}
	for _, name := range want {
		opaque(name, "y")
	}
	not = []string{"op-new", "op-wo", "gone/op-under", "op-new-parent/sub", "op-n", "op-yy"}
	for _, name := range not[:4] {
		opaque(name, "y")
	}
	opaque("op-n", "n")
	opaque("op-yy", "yy")
	// An owner, which the marker takes, and special bits, which it leaves out.
	must(unix.Chmod(filepath.Join(upper, "op-in-l1"), 0o3770))
	must(os.Lchown(filepath.Join(upper, "op-in-l1"), 7, 8))
	return upper, []string{l1, l2}, want, not
}

func oursOverlay(t *testing.T, upper string, lowers []string, ids *idtools.IDMappings) []byte {
	t.Helper()
	o := &Overlay{Lowers: lowers, OpaqueXattr: archive.GetOverlayXattrName("opaque")}
	return normalized(t, Reader(t.Context(), upper, Options{IDMappings: ids, Overlay: o}))
}

func storagesOverlay(t *testing.T, upper string, lowers []string, uids, gids []idtools.IDMap) []byte {
	t.Helper()
	rc, err := archive.TarWithOptions(upper, &archive.TarOptions{
		Compression: archive.Uncompressed, UIDMaps: uids, GIDMaps: gids,
		WhiteoutFormat: archive.OverlayWhiteoutFormat, WhiteoutData: lowers,
	})
	if err != nil {
		t.Fatal(err)
	}
	return normalized(t, rc)
}

// An overlay layer's upper directory is written as containers/storage's
// overlay driver writes its native diff, once both are normalised: the
// same entries, whiteouts and opaque markers.
func TestOverlaySameAsContainersStorage(t *testing.T) {
	requireRoot(t)
	upper, lowers, hides, hidesNot := overlayLayers(t, 4, true)
	got := oursOverlay(t, upper, lowers, nil)
	assertSameStream(t, storagesOverlay(t, upper, lowers, nil, nil), got)
	entries := strings.Join(listing(t, got), "\n")
	for _, name := range []string{".wh.wo-a", ".wh.wo-b", "x/.wh.wo-c", ".wh.wo-own"} {
		if !strings.Contains(entries, `"`+name+`" 0 0 0:0 0 0 "" 0,0 map[]`) {
			t.Errorf("the stream lacks the plain whiteout %s:\n%s", name, entries)
		}
	}
	if !strings.Contains(entries, `"x/dev-0-1" 3`) {
		t.Errorf("the device 0,1 is not written as a device:\n%s", entries)
	}
	for _, name := range hides {
		if !bytes.Contains(got, []byte(name+"/.wh..wh..opq\x00")) {
			t.Errorf("opaque %s hides a directory below, but has no marker", name)
		}
	}
	for _, name := range hidesNot {
		if bytes.Contains(got, []byte(name+"/.wh..wh..opq")) {
			t.Errorf("%s has an opaque marker, but hides nothing below", name)
		}
	}
	// A layer with nothing below has nothing to hide.
	if bytes.Contains(oursOverlay(t, upper, nil, nil), []byte(".wh..wh..opq")) {
		t.Errorf("an opaque marker in a layer with no layer below")
	}
	// Read as a plain tree, a whiteout is a device.
	if plain := ours(t, upper, nil); bytes.Contains(plain, []byte(".wh.")) {
		t.Errorf("a plain tree's stream converts whiteouts")
	}
}

// The same with an ID mapping. A whiteout is written whatever its owner:
// the kernel makes it as the mounter, whom the mapping need not hold
// (containers/storage leaves such a whiteout out).
func TestOverlaySameAsContainersStorageMapped(t *testing.T) {
	requireRoot(t)
	const base = 100000
	uids := []idtools.IDMap{{ContainerID: 0, HostID: base, Size: 65536}}
	gids := []idtools.IDMap{{ContainerID: 0, HostID: base, Size: 65536}}
	ids := idtools.NewIDMappingsFromMaps(uids, gids)
	upper, lowers, _, _ := overlayLayers(t, 5, false) // no path past PATH_MAX, for filepath.Walk
	if err := filepath.Walk(upper, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		return os.Lchown(p, base+int(st.Uid%1000), base+int(st.Gid%1000))
	}); err != nil {
		t.Fatal(err)
	}
	assertSameStream(t, storagesOverlay(t, upper, lowers, uids, gids), oursOverlay(t, upper, lowers, ids))

	if err := os.Lchown(filepath.Join(upper, "wo-own"), 0, 0); err != nil {
		t.Fatal(err)
	}
	if got := oursOverlay(t, upper, lowers, ids); !bytes.Contains(got, []byte(".wh.wo-own\x00")) {
		t.Errorf("a whiteout owned by host root, outside the mapping, is left out")
	}
	if got := storagesOverlay(t, upper, lowers, uids, gids); bytes.Contains(got, []byte(".wh.wo-own\x00")) {
		t.Logf("containers/storage now keeps a whiteout owned outside the mapping; the comment above is out of date")
	}
}

// A lower layer that cannot be read fails the stream, naming it.
func TestOverlayUnreadableLower(t *testing.T) {
	requireRoot(t)
	upper := t.TempDir()
	if err := os.Mkdir(filepath.Join(upper, "op"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(upper, "op"), archive.GetOverlayXattrName("opaque"), []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "gone")
	o := &Overlay{Lowers: []string{missing}, OpaqueXattr: archive.GetOverlayXattrName("opaque")}
	_, err := io.Copy(io.Discard, Reader(t.Context(), upper, Options{Overlay: o}))
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), `"/op"`) {
		t.Fatalf("stream with a lower layer gone: %v, want an error naming it and the directory", err)
	}
}
