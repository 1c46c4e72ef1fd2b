package bricklayer

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bricklayer/bricklayer/internal/testutil"
	"github.com/klauspost/compress/gzip"
	digest "github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/directory"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/pkg/compression"
	"go.podman.io/image/v5/types"
	"golang.org/x/sys/unix"
)

// Hostile content in a container: whatever a build step leaves in the root
// filesystem, the commit writes a tar that holds it as it is (or says what a
// tar cannot hold) and never reaches outside the root filesystem through it.
//
// What does not go through as it is:
//   - a socket is left out of the layer (containers/storage's tar writer
//     skips it and logs so at info level), as docker and buildah do;
//   - a directory whose name is not UTF-8 fails a commit into the
//     builder's own store with ErrUnreadableName with the overlay driver,
//     which cannot store it (see layer_names.go);
//   - a path longer than PATH_MAX is written to layouts and archives, but a
//     commit into containers-storage fails ("file name too long"): the store
//     cannot apply it;
//   - a sparse file is written whole, holes as zeros: the tar stream has no
//     sparse entries (TestCommitSparseHugeFile).

// hostileEntry is what a layer's tar must hold for one name.
type hostileEntry struct {
	Type     byte
	Mode     fs.FileMode // permission and special bits; 0 skips the check
	Size     int64
	Content  digest.Digest // regular files; "" skips the check
	Linkname string
	Major    int64
	Minor    int64
}

// fileMode turns permission and special bits written the unix way (04755)
// into an fs.FileMode.
func fileMode(bits uint32) fs.FileMode {
	m := fs.FileMode(bits & 0o777)
	if bits&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if bits&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if bits&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// hostileTree writes hostile content under root and returns what the layer
// should hold. It skips what this machine cannot make (device nodes when
// not root), and logs it.
func hostileTree(t *testing.T, root string) map[string]hostileEntry {
	t.Helper()
	want := map[string]hostileEntry{}
	file := func(name string, data []byte, bits uint32) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		mode := fileMode(bits)
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		want[name] = hostileEntry{Type: tar.TypeReg, Mode: mode, Size: int64(len(data)), Content: digest.FromBytes(data)}
	}
	dir := func(name string, bits uint32) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		mode := fileMode(bits)
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		want[name] = hostileEntry{Type: tar.TypeDir, Mode: mode}
	}
	symlink := func(name, target string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
		want[name] = hostileEntry{Type: tar.TypeSymlink, Linkname: target}
	}

	// Device nodes, a fifo.
	dir("dev", 0o755)
	for _, d := range []struct {
		name         string
		typ          byte
		mode         uint32
		major, minor uint32
	}{
		{"dev/null", tar.TypeChar, unix.S_IFCHR | 0o666, 1, 3},
		{"dev/loop9", tar.TypeBlock, unix.S_IFBLK | 0o660, 7, 9},
		{"dev/big-numbers", tar.TypeChar, unix.S_IFCHR | 0o600, 4095, 1048575},
	} {
		err := unix.Mknod(filepath.Join(root, d.name), d.mode, int(unix.Mkdev(d.major, d.minor)))
		if err != nil {
			t.Logf("SKIPPED %s: mknod: %v", d.name, err)
			continue
		}
		if err := unix.Chmod(filepath.Join(root, d.name), d.mode&0o7777); err != nil { // past the umask
			t.Fatal(err)
		}
		want[d.name] = hostileEntry{Type: d.typ, Mode: fileMode(d.mode & 0o7777), Major: int64(d.major), Minor: int64(d.minor)}
	}
	if err := unix.Mkfifo(filepath.Join(root, "dev/fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(filepath.Join(root, "dev/fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	want["dev/fifo"] = hostileEntry{Type: tar.TypeFifo, Mode: 0o640}
	// A socket: bound through /proc/self/fd (socket paths are limited to
	// 108 bytes, and a socket bound elsewhere cannot be moved onto an
	// overlay mount). Tar cannot hold sockets: the layer leaves it out.
	dev, err := os.Open(filepath.Join(root, "dev"))
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: fmt.Sprintf("/proc/self/fd/%d/socket", dev.Fd())}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)

	// Special mode bits.
	file("suid-file", []byte("#!/bin/sh\n"), 0o4755)
	file("sgid-file", []byte("#!/bin/sh\n"), 0o2711)
	file("suid-sgid-sticky", []byte("x"), 0o7777)
	file("no-permissions", []byte("secret"), 0)
	dir("sticky-dir", 0o1777)
	dir("unreadable-dir", 0o755)
	file("unreadable-dir/inside", []byte("inside"), 0o644)
	if err := os.Chmod(filepath.Join(root, "unreadable-dir"), 0); err != nil {
		t.Fatal(err)
	}
	want["unreadable-dir"] = hostileEntry{Type: tar.TypeDir, Mode: 0}

	// Very long names: a 255-byte component, a path longer than PATH_MAX
	// (made one component at a time), and a 4000-byte symlink target.
	long := strings.Repeat("n", 255)
	file(long, []byte("long name"), 0o644)
	symlink("long-target", strings.Repeat("t/", 2000))

	// Names that are not UTF-8. (A directory of such a name is in
	// nonUTF8Dir: not every commit can hold it.)
	file("latin1-caf\xe9", []byte("latin1"), 0o644)
	file("bytes-\xff\xfe\x80", []byte("bytes"), 0o644)
	symlink("to-non-utf8", "latin1-caf\xe9")
	file("new\nline and\ttab", []byte("ws"), 0o644)

	// Hard links across directories.
	dir("hl-a", 0o755)
	dir("hl-b", 0o755)
	file("hl-a/file", []byte("linked"), 0o644)
	if err := os.Link(filepath.Join(root, "hl-a/file"), filepath.Join(root, "hl-b/link")); err != nil {
		t.Fatal(err)
	}
	want["hl-b/link"] = hostileEntry{Type: tar.TypeLink, Linkname: "hl-a/file"}

	// Symlink loops, and links out of the root filesystem, which must be
	// stored as links, never followed.
	symlink("loop-a", "loop-b")
	symlink("loop-b", "loop-a")
	symlink("loop-self", "loop-self")
	symlink("loop-up", ".")
	symlink("shadow", "/etc/shadow")
	symlink("etc", "/etc")
	symlink("escape", "../../../../../../../../etc/passwd")
	symlink("proc-self-root", "/proc/self/root")
	dir("under-link", 0o755)
	symlink("under-link/root", "/")
	return want
}

// deepPath makes a path longer than PATH_MAX under root, one component at
// a time, and returns its entries. A layer holds it; the store cannot apply
// it.
func deepPath(t *testing.T, root string) map[string]hostileEntry {
	t.Helper()
	want := map[string]hostileEntry{}
	deep := testutil.DeepPath(t, root, 20, 250)
	want[deep+"/leaf"] = hostileEntry{Type: tar.TypeReg, Mode: 0o644, Size: 4, Content: digest.FromBytes([]byte("leaf"))}
	for p := deep; p != "."; p = filepath.Dir(p) {
		want[p] = hostileEntry{Type: tar.TypeDir, Mode: 0o755}
	}
	return want
}

// nonUTF8Dir makes a directory whose name is not valid UTF-8, holding a
// file, and returns their entries. Every commit holds it, but one into an
// overlay store (ErrUnreadableName).
func nonUTF8Dir(t *testing.T, root string) map[string]hostileEntry {
	t.Helper()
	if err := os.Mkdir(filepath.Join(root, "dir-\xc3\x28"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "dir-\xc3\x28", "inside"), []byte("in"), 0o644); err != nil {
		t.Fatal(err)
	}
	return map[string]hostileEntry{
		"dir-\xc3\x28":        {Type: tar.TypeDir, Mode: 0o755},
		"dir-\xc3\x28/inside": {Type: tar.TypeReg, Mode: 0o644, Size: 2, Content: digest.FromBytes([]byte("in"))},
	}
}

// ociLayerReader opens the only layer of the only image in an OCI layout,
// decompressed.
func ociLayerReader(t *testing.T, dir string) io.Reader {
	t.Helper()
	m := readOCIManifest(t, dir)
	if len(m.Layers) != 1 {
		t.Fatalf("%d layers, want 1", len(m.Layers))
	}
	f, err := os.Open(filepath.Join(dir, "blobs", "sha256", m.Layers[0].Digest.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if !strings.HasSuffix(m.Layers[0].MediaType, "+gzip") {
		return f
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return zr
}

func TestCommitHostileContent(t *testing.T) {
	for _, driver := range []string{"vfs", "overlay"} {
		t.Run(driver, func(t *testing.T) { testCommitHostileContent(t, driver) })
	}
}

func testCommitHostileContent(t *testing.T, driver string) {
	for _, onBase := range []bool{false, true} {
		name := "scratch"
		if onBase {
			name = "on-base"
		}
		t.Run(name, func(t *testing.T) {
			env := newTestEnvWith(t, driver)
			from := Scratch
			if onBase {
				env.commitBase(t, "base", "localhost/base:latest", 50)
				from = "localhost/base:latest"
			}
			b, mp := env.newMountedBuilder(t, from, "hostile")
			want := hostileTree(t, mp)
			badDir := nonUTF8Dir(t, mp)
			ctr, err := env.store.Container(b.ContainerID())
			if err != nil {
				t.Fatal(err)
			}

			// Every new layer is read by treetar: a layer without a
			// parent and a squashed image as a tree, the vfs driver's
			// layer with a parent from its list of changes, an overlay
			// layer with one from its upper directory. All hold the
			// directory whole.
			maps.Copy(want, badDir)
			dest := ociRef(t, env.dir(t, "oci"), "squashed")
			if _, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys, Squash: true}); err != nil {
				t.Fatalf("squashed commit with a directory named in Latin-1: %v", err)
			}
			got := readHostileLayer(t, dest, 0)
			for name, e := range badDir {
				if g, ok := got[name]; !ok || g.Type != e.Type {
					t.Errorf("squashed layer: %q is %+v, want %+v", name, g, e)
				}
			}
			deep := deepPath(t, mp)
			maps.Copy(want, deep)

			for _, tc := range []struct {
				name        string
				dest        types.ImageReference
				compression Compression
			}{
				{"oci-none", ociRef(t, env.dir(t, "oci"), "latest"), CompressionNone},
				{"oci-gzip", ociRef(t, env.dir(t, "oci"), "latest"), CompressionGzip},
				{"dir-zstd", dirRef(t, env.dir(t, "dir")), CompressionZstd},
			} {
				t.Run(tc.name, func(t *testing.T) {
					if _, err := b.Commit(env.ctx, tc.dest, CommitOptions{SystemContext: env.sys, Compression: tc.compression}); err != nil {
						t.Fatalf("commit: %v", err)
					}
					img := checkImage(t, tc.dest, wantImage{Layers: -1})
					compareHostile(t, want, readHostileLayer(t, tc.dest, len(img.Layers)-1))
				})
			}

			// The store applies the layer it is given, and cannot make a
			// path longer than PATH_MAX: the commit says so and leaves
			// nothing; without that path it writes the rest.
			t.Run("store", func(t *testing.T) {
				dest := storeRef(t, env.store, "localhost/hostile:latest")
				images, layers := snapshotStore(t, env.store)
				_, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys})
				// An overlay store cannot hold the Latin-1 directory
				// either, and the layer's reader may meet that first.
				either := driver == "overlay" && errors.Is(err, ErrUnreadableName)
				if err == nil || !strings.Contains(err.Error(), "file name too long") && !either || !strings.Contains(err.Error(), ctr.LayerID) {
					t.Errorf("commit of a path longer than PATH_MAX into the store: %v, want \"file name too long\" naming the layer", err)
				}
				if i, l := snapshotStore(t, env.store); i != images || l != layers {
					t.Errorf("store has %d images and %d layers after a failed commit, %d and %d before", i, l, images, layers)
				}
				assertEmptyDir(t, env.tmp)
				if err := os.RemoveAll(filepath.Join(mp, strings.Split(slices.Collect(maps.Keys(deep))[0], "/")[0])); err != nil {
					t.Fatal(err)
				}
				for k := range deep {
					delete(want, k)
				}
				// The overlay driver cannot store a directory whose name
				// is not UTF-8 either: the commit says so.
				if driver == "overlay" {
					_, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys})
					if !errors.Is(err, ErrUnreadableName) || !strings.Contains(err.Error(), strconv.Quote("/dir-\xc3\x28")) || strings.Count(err.Error(), "not valid UTF-8") != 1 {
						t.Errorf("commit into an overlay store with a directory named in Latin-1: %v, want ErrUnreadableName naming it once", err)
					}
					if i, l := snapshotStore(t, env.store); i != images || l != layers {
						t.Errorf("store has %d images and %d layers after a failed commit, %d and %d before", i, l, images, layers)
					}
					if err := os.RemoveAll(filepath.Join(mp, "dir-\xc3\x28")); err != nil {
						t.Fatal(err)
					}
					for k := range badDir {
						delete(want, k)
					}
				}
				if _, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys}); err != nil {
					t.Fatalf("commit: %v", err)
				}
				img := checkImage(t, dest, wantImage{Layers: -1})
				compareHostile(t, want, readHostileLayer(t, dest, len(img.Layers)-1))
				checkStore(t, env.store)
			})
		})
	}
}

func dirRef(t *testing.T, dir string) types.ImageReference {
	t.Helper()
	ref, err := directory.NewReference(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// readHostileLayer reads layer i of the image ref names.
func readHostileLayer(t *testing.T, ref types.ImageReference, i int) map[string]hostileEntry {
	t.Helper()
	ctx := context.Background()
	src, err := ref.NewImageSource(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	raw, mtype, err := src.GetManifest(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.FromBlob(raw, mtype)
	if err != nil {
		t.Fatal(err)
	}
	infos := layerInfosForCopy(t, src, m)
	rc, _, err := src.GetBlob(ctx, infos[i], none.NoCache)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	r, _, err := compression.AutoDecompress(rc)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := map[string]hostileEntry{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatalf("reading the layer: %v", err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "./"), "/")
		if _, dup := got[name]; dup {
			t.Errorf("%q: twice in the layer", shorten(name))
		}
		e := hostileEntry{Type: hdr.Typeflag, Mode: hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky), Linkname: hdr.Linkname}
		switch hdr.Typeflag {
		case tar.TypeReg:
			d := digest.Canonical.Digester()
			n, err := io.Copy(d.Hash(), tr)
			if err != nil {
				t.Fatalf("reading %q: %v", shorten(name), err)
			}
			e.Size, e.Content = n, d.Digest()
		case tar.TypeChar, tar.TypeBlock:
			e.Major, e.Minor = hdr.Devmajor, hdr.Devminor
		case tar.TypeLink:
			e.Mode, e.Linkname = 0, strings.TrimPrefix(hdr.Linkname, "./")
		case tar.TypeSymlink:
			e.Mode = 0
		}
		got[name] = e
	}
}

// compareHostile reports every difference between the entries written and
// those read back, and any regular file that a link out of the root
// brought in.
func compareHostile(t *testing.T, want, got map[string]hostileEntry) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%q (%d bytes): missing from the layer", shorten(name), len(name))
			continue
		}
		if g != w {
			t.Errorf("%q: got %+v, want %+v", shorten(name), g, w)
		}
	}
	for name, g := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%q: in the layer but not written: %+v", shorten(name), g)
		}
	}
	for name, g := range got {
		if g.Type == tar.TypeReg && (strings.Contains(name, "shadow") || strings.Contains(name, "passwd") || strings.HasPrefix(name, "etc/") || strings.HasPrefix(name, "under-link/root/")) {
			t.Errorf("%q: a link out of the root was followed", name)
		}
	}
}

// shorten keeps error messages about very long names readable.
func shorten(name string) string {
	if len(name) <= 80 {
		return name
	}
	return fmt.Sprintf("%s...(%d bytes)...%s", name[:30], len(name), name[len(name)-30:])
}

// A sparse file of 8 GiB holding a few bytes: the tar format the store
// writes has no holes, so the export reads and hashes 8 GiB of zeros and
// the layer's tar stream holds them; gzip makes the blob small. The test
// measures how long that takes and checks the content.
func TestCommitSparseHugeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 8 GiB through the export")
	}
	env := newTestEnv(t)
	b, mp := env.newMountedBuilder(t, Scratch, "sparse")
	const size = 8 << 30
	f, err := os.Create(filepath.Join(mp, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	marks := map[int64]string{0: "start", 4 << 30: "middle", size - 3: "end"}
	for off, s := range marks {
		if _, err := f.WriteAt([]byte(s), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(mp, "sparse"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != size || st.Blocks*512 > 1<<20 {
		t.Fatalf("the file is %d bytes in %d blocks: not sparse here", st.Size, st.Blocks)
	}

	layout := env.dir(t, "oci")
	start := time.Now()
	if _, err := b.Commit(env.ctx, ociRef(t, layout, "latest"), CommitOptions{SystemContext: env.sys}); err != nil {
		t.Fatalf("commit: %v", err)
	}
	elapsed := time.Since(start)
	blobs := listFiles(t, filepath.Join(layout, "blobs"))
	var total int64
	for _, p := range blobs {
		fi, err := os.Stat(filepath.Join(layout, "blobs", p))
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	t.Logf("committed an 8 GiB sparse file in %s (%.0f MiB/s); the layout holds %d bytes", elapsed.Round(time.Millisecond), float64(size)/(1<<20)/elapsed.Seconds(), total)
	if elapsed > 5*time.Minute {
		t.Errorf("the commit took %s", elapsed)
	}

	// Read it back: one regular file of 8 GiB, zeros but for the marks.
	tr := tar.NewReader(ociLayerReader(t, layout))
	found := false
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(hdr.Name, "./") != "sparse" {
			continue
		}
		found = true
		if hdr.Typeflag != tar.TypeReg || hdr.Size != size {
			t.Fatalf("sparse: type %q, %d bytes; want a regular file of %d", hdr.Typeflag, hdr.Size, int64(size))
		}
		if err := checkSparseContent(tr, size, marks); err != nil {
			t.Errorf("sparse: %v", err)
		}
	}
	if !found {
		t.Error("the layer lacks the sparse file")
	}
}

// checkSparseContent reads size bytes from r and checks they are zeros but
// for marks.
func checkSparseContent(r io.Reader, size int64, marks map[int64]string) error {
	buf := make([]byte, 1<<20)
	zeros := make([]byte, len(buf))
	var off int64
	for off < size {
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), size-off)])
		if err != nil {
			return fmt.Errorf("at %d: %w", off+int64(n), err)
		}
		chunk := buf[:n]
		for m, s := range marks {
			if m >= off && m < off+int64(n) {
				i := m - off
				if !bytes.Equal(chunk[i:i+int64(len(s))], []byte(s)) {
					return fmt.Errorf("at %d: %q, want %q", m, chunk[i:i+int64(len(s))], s)
				}
				clear(chunk[i : i+int64(len(s))])
			}
		}
		if !bytes.Equal(chunk, zeros[:n]) {
			return fmt.Errorf("in the %d bytes at %d: a non-zero byte where a hole was", n, off)
		}
		off += int64(n)
	}
	return nil
}
