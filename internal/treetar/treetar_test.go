package treetar

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bricklayer/bricklayer/internal/tarnorm"
	"github.com/bricklayer/bricklayer/internal/testutil"
	"go.podman.io/storage/pkg/archive"
	"go.podman.io/storage/pkg/idtools"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// normalized reads a tar stream through tarnorm, as every export does.
func normalized(t *testing.T, r io.ReadCloser) []byte {
	t.Helper()
	defer r.Close()
	var buf bytes.Buffer
	if err := tarnorm.Copy(&buf, r, tarnorm.Options{}, 0); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func ours(t *testing.T, root string, ids *idtools.IDMappings) []byte {
	t.Helper()
	return normalized(t, Reader(t.Context(), root, Options{IDMappings: ids}))
}

func storages(t *testing.T, root string, uids, gids []idtools.IDMap) []byte {
	t.Helper()
	rc, err := archive.TarWithOptions(root, &archive.TarOptions{Compression: archive.Uncompressed, UIDMaps: uids, GIDMaps: gids})
	if err != nil {
		t.Fatal(err)
	}
	return normalized(t, rc)
}

// eachEntry calls fn with each header of the tar stream r, and a reader
// of the entry's contents.
func eachEntry(t *testing.T, r io.Reader, fn func(hdr *tar.Header, contents io.Reader)) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		fn(hdr, tr)
	}
}

// listing describes a tar stream one entry a line, for error messages.
func listing(t *testing.T, stream []byte) []string {
	t.Helper()
	var out []string
	eachEntry(t, bytes.NewReader(stream), func(hdr *tar.Header, _ io.Reader) {
		out = append(out, fmt.Sprintf("%q %c %o %d:%d %d %v %q %d,%d %q", hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Uid, hdr.Gid, hdr.Size, hdr.ModTime.Unix(), hdr.Linkname, hdr.Devmajor, hdr.Devminor, hdr.PAXRecords))
	})
	return out
}

// assertSameStream fails unless the two normalised streams are the same
// bytes, listing the entries that differ.
func assertSameStream(t *testing.T, want, got []byte) {
	t.Helper()
	if bytes.Equal(want, got) {
		return
	}
	w, g := listing(t, want), listing(t, got)
	for i := range max(len(w), len(g)) {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			t.Errorf("entry %d:\n containers/storage: %s\n treetar:            %s", i, a, b)
		}
	}
	t.Fatalf("the streams differ (%d and %d bytes, %d and %d entries)", len(want), len(got), len(w), len(g))
}

// capability returns a security.capability value of the given revision
// (2 or 3), with root ID rootID for revision 3.
func capability(rev int, rootID uint32) []byte {
	size := capSizeV2
	if rev == 3 {
		size = capSizeV3
	}
	v := make([]byte, size)
	binary.LittleEndian.PutUint32(v, uint32(rev)<<24|1) // effective
	binary.LittleEndian.PutUint32(v[4:], 1<<10)         // CAP_NET_BIND_SERVICE
	if rev == 3 {
		binary.LittleEndian.PutUint32(v[capSizeV2:], rootID)
	}
	return v
}

// extras adds to the tree under root what testutil.FillTree leaves out:
// extended attributes of every kind, hard links that are not regular files,
// devices, a socket, names that are not UTF-8, and times before 1970 and
// after 2038.
func extras(t *testing.T, root string) {
	t.Helper()
	at := func(p string) string { return filepath.Join(root, p) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, content string) { must(os.WriteFile(at(p), []byte(content), 0o644)) }
	must(os.MkdirAll(at("x/dir"), 0o755))
	write("x/file", "xattrs")
	write("x/linked", "two names, one set of attributes")
	must(os.Link(at("x/linked"), at("x/linked-too")))
	for _, p := range []string{"x/file", "x/dir", "x/linked"} {
		must(unix.Setxattr(at(p), "user.kept", []byte("value of "+p), 0))
		must(unix.Setxattr(at(p), "user.overlay.left-out", []byte("y"), 0))
		must(unix.Setxattr(at(p), "trusted.left-out", []byte("z"), 0))
	}
	must(unix.Setxattr(at("x/file"), "user.empty", nil, 0))
	must(unix.Setxattr(at("x/file"), "user.big", bytes.Repeat([]byte("b"), 3000), 0))
	write("x/cap2", "capability v2")
	must(unix.Setxattr(at("x/cap2"), xattrCap, capability(2, 0), 0))
	write("x/cap3", "capability v3")
	must(unix.Setxattr(at("x/cap3"), xattrCap, capability(3, 1000), 0))
	write("x/ima", "ima")
	if err := unix.Setxattr(at("x/ima"), xattrIMA, []byte{3, 2, 1}, 0); err != nil {
		t.Logf("no security.ima here: %v", err)
	}

	must(unix.Mknod(at("x/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(at("x/loop"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 0))))
	must(unix.Mknod(at("x/fifo"), unix.S_IFIFO|0o600, 0))
	must(os.Link(at("x/fifo"), at("x/fifo-too")))
	must(os.Symlink("file", at("x/symlink")))
	must(os.Link(at("x/symlink"), at("x/symlink-too")))
	l, err := net.Listen("unix", at("x/socket"))
	must(err)
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	write("x/latin1-caf\xe9", "latin1")
	write("x/"+strings.Repeat("n", 255), "long name")
	must(os.Symlink(strings.Repeat("t/", 1500), at("x/long-target")))
	write("x/empty", "")
	write("x/unreadable", "root reads it all the same")
	must(os.Chmod(at("x/unreadable"), 0))
	for p, tm := range map[string]time.Time{
		"x/1960": time.Date(1960, 1, 1, 0, 0, 0, 500_000_000, time.UTC),
		"x/2100": time.Date(2100, 1, 1, 0, 0, 0, 999_999_999, time.UTC),
		"x/now":  time.Now(),
	} {
		write(p, p)
		must(os.Chtimes(at(p), tm, tm))
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if !testutil.Owned() {
		t.Skip("needs root: devices, owners and trusted attributes")
	}
}

// The stream is what containers/storage writes for the same tree, once
// both are normalised.
func TestSameAsContainersStorage(t *testing.T) {
	requireRoot(t)
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			root := t.TempDir()
			testutil.FillTree(t, root, seed)
			extras(t, root)
			testutil.DeepPath(t, root, 20, 250)
			want, got := storages(t, root, nil, nil), ours(t, root, nil)
			assertSameStream(t, want, got)
			for _, name := range []string{"x/dir/", "x/cap3", "x/linked-too", "x/fifo-too", "x/symlink-too", "x/null", "x/loop"} {
				if !bytes.Contains(got, []byte(name+"\x00")) {
					t.Errorf("the stream lacks %s", name)
				}
			}
			if bytes.Contains(got, []byte("x/socket")) || bytes.Contains(got, []byte("left-out")) {
				t.Errorf("the stream holds the socket or an attribute it should leave out")
			}
		})
	}
}

// With ID mappings, owners and the root ID of a v3 capability are mapped
// back into the container's ID space, as containers/storage maps them.
func TestSameAsContainersStorageMapped(t *testing.T) {
	requireRoot(t)
	const base = 100000
	uids := []idtools.IDMap{{ContainerID: 0, HostID: base, Size: 65536}}
	gids := []idtools.IDMap{{ContainerID: 0, HostID: base + 200000, Size: 65536}}
	root := t.TempDir()
	testutil.FillTree(t, root, 3)
	extras(t, root)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(root, "x/cap3-root"), []byte("root"), 0o755))
	// Every file owned inside the mapping, as in a layer of a
	// user-namespaced container.
	must(filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		return os.Lchown(p, base+int(st.Uid%1000), base+200000+int(st.Gid%1000))
	}))
	// Set after the owners, since a chown drops a file's capabilities.
	must(unix.Setxattr(filepath.Join(root, "x/cap3-root"), xattrCap, capability(3, base), 0))
	must(unix.Setxattr(filepath.Join(root, "x/cap3"), xattrCap, capability(3, base+1000), 0))
	want := storages(t, root, uids, gids)
	got := ours(t, root, idtools.NewIDMappingsFromMaps(uids, gids))
	assertSameStream(t, want, got)
	for _, e := range listing(t, got) {
		if strings.Contains(e, " 10") && strings.Contains(e, ":30") {
			t.Errorf("an owner was not mapped: %s", e)
		}
	}
	if !bytes.Contains(got, append([]byte(paxXattr+xattrCap+"="), capability(2, 0)...)) {
		t.Errorf("the v3 capability of the container's root is not a v2 one")
	}
	if !bytes.Contains(got, append([]byte(paxXattr+xattrCap+"="), capability(3, 1000)...)) {
		t.Errorf("the v3 capability's root ID is not mapped")
	}
}

// An owner outside the mapping fails the stream, naming the file, where
// containers/storage leaves the file out.
func TestUnmappedOwner(t *testing.T) {
	requireRoot(t)
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "stray"), []byte("owned by host root"), 0o644); err != nil {
		t.Fatal(err)
	}
	ids := idtools.NewIDMappingsFromMaps([]idtools.IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}, []idtools.IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}})
	_, err := io.Copy(io.Discard, Reader(t.Context(), root, Options{IDMappings: ids}))
	if err == nil || !strings.Contains(err.Error(), `"/stray"`) || !strings.Contains(err.Error(), root) {
		t.Fatalf("stream of a file owned outside the mapping: %v, want an error naming it", err)
	}
}

// A directory whose name is not UTF-8 is written with its contents;
// containers/storage's walk leaves them out.
func TestNonUTF8Directory(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "dir-\xc3\x28")
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "inside"), []byte("in"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(listing(t, ours(t, root, nil)), "\n")
	for _, name := range []string{"dir-\xc3\x28/", "dir-\xc3\x28/sub/", "dir-\xc3\x28/sub/inside"} {
		if !strings.Contains(got, fmt.Sprintf("%q ", name)) {
			t.Errorf("the stream lacks %q:\n%s", name, got)
		}
	}
}

// readEntries returns the names in a stream of ours and the contents of
// its regular files.
func readEntries(t *testing.T, r io.Reader) map[string]string {
	t.Helper()
	out := map[string]string{}
	eachEntry(t, r, func(hdr *tar.Header, contents io.Reader) {
		b, err := io.ReadAll(contents)
		if err != nil {
			t.Fatal(err)
		}
		out[hdr.Name] = string(b)
	})
	return out
}

// setHook sets a test hook for the rest of the test.
func setHook(t *testing.T, hook *func(string), fn func(string)) {
	*hook = fn
	t.Cleanup(func() { *hook = nil })
}

// A file removed while the tree is read is left out; one replaced, turned
// into a link (even one out of the tree) or shrunk fails the stream,
// naming it, and nothing outside the tree is read.
func TestChangedWhileRead(t *testing.T) {
	mkTree := func(t *testing.T) string {
		root := t.TempDir()
		for _, p := range []string{"a", "b", "c/d"} {
			if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, p), []byte("content of "+p), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("removed", func(t *testing.T) {
		root := mkTree(t)
		setHook(t, &testHookStat, func(rel string) {
			if rel == "a" {
				os.Remove(filepath.Join(root, "b"))
			}
		})
		got := readEntries(t, Reader(t.Context(), root, Options{}))
		if _, ok := got["b"]; ok || got["a"] != "content of a" || got["c/d"] != "content of c/d" {
			t.Errorf("entries %v, want a, c/ and c/d", got)
		}
	})
	for _, tc := range []struct {
		name, rel string
		hook      *func(string)
		change    func(root string) error
	}{
		{"file replaced", "a", &testHookStat, func(root string) error {
			// Made before the rename, so that it has another inode.
			if err := os.WriteFile(filepath.Join(root, "a.new"), []byte("another"), 0o644); err != nil {
				return err
			}
			return os.Rename(filepath.Join(root, "a.new"), filepath.Join(root, "a"))
		}},
		{"file made a link out", "a", &testHookStat, func(root string) error {
			os.Remove(filepath.Join(root, "a"))
			return os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "a"))
		}},
		{"directory made a link out", "c", &testHookStat, func(root string) error {
			if err := os.Rename(filepath.Join(root, "c"), filepath.Join(root, "old-c")); err != nil {
				return err
			}
			return os.Symlink(outside, filepath.Join(root, "c"))
		}},
		{"file shrunk", "b", &testHookOpened, func(root string) error {
			return os.Truncate(filepath.Join(root, "b"), 3)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := mkTree(t)
			var changeErr error
			setHook(t, tc.hook, func(rel string) {
				if rel == tc.rel {
					changeErr = tc.change(root)
				}
			})
			var buf bytes.Buffer
			err := Write(t.Context(), &buf, root, Options{})
			if changeErr != nil {
				t.Fatal(changeErr)
			}
			if !errors.Is(err, ErrChanged) || !strings.Contains(err.Error(), fmt.Sprintf("%q", "/"+tc.rel)) {
				t.Errorf("stream: %v, want ErrChanged naming /%s", err, tc.rel)
			}
			if bytes.Contains(buf.Bytes(), []byte("secret")) {
				t.Errorf("the stream holds a file outside the tree")
			}
		})
	}
}

// A root that cannot be read fails, naming it; a cancelled context stops
// the stream; a closed reader stops the goroutine.
func TestErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	if err := Write(t.Context(), io.Discard, missing, Options{}); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("stream of a missing root: %v", err)
	}
	root := t.TempDir()
	testutil.FillTree(t, root, 4)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Write(ctx, io.Discard, root, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("stream with a cancelled context: %v", err)
	}
	r := Reader(t.Context(), root, Options{})
	if _, err := r.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := r.Read(make([]byte, 10)); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("read after close: %v", err)
	}
}

// With Options.Normalize the stream is what tarnorm.Copy makes of the
// plain one, for a tree and for changes, with and without a clamped
// mtime; Check sees every header and its error ends the stream.
func TestNormalizeAsTarnorm(t *testing.T) {
	requireRoot(t)
	newDir, changes := changedTree(t, 6)
	for _, clamp := range []time.Time{{}, time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC)} {
		for _, tc := range []struct {
			name   string
			stream func(Options) io.ReadCloser
		}{
			{"tree", func(o Options) io.ReadCloser { return Reader(t.Context(), newDir, o) }},
			{"changes", func(o Options) io.ReadCloser { return ChangesReader(t.Context(), newDir, changes, o) }},
		} {
			t.Run(fmt.Sprintf("%s/clamp=%v", tc.name, !clamp.IsZero()), func(t *testing.T) {
				checked := 0
				norm := &tarnorm.Options{ClampMtime: clamp, Check: func(*tar.Header) error { checked++; return nil }}
				plain := tc.stream(Options{})
				var want bytes.Buffer
				if err := tarnorm.Copy(&want, plain, tarnorm.Options{ClampMtime: clamp}, 0); err != nil {
					t.Fatal(err)
				}
				plain.Close()
				pre := tc.stream(Options{Normalize: norm})
				got, err := io.ReadAll(pre)
				pre.Close()
				if err != nil {
					t.Fatal(err)
				}
				assertSameStream(t, want.Bytes(), got)
				if n := len(listing(t, got)); checked != n {
					t.Errorf("Check saw %d headers of %d", checked, n)
				}
			})
		}
	}
	stop := errors.New("stop")
	_, err := io.Copy(io.Discard, Reader(t.Context(), newDir, Options{Normalize: &tarnorm.Options{Check: func(*tar.Header) error { return stop }}}))
	if !errors.Is(err, stop) {
		t.Errorf("stream whose Check fails: %v", err)
	}
}
