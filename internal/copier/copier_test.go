package copier

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// fixture is a root filesystem at base/a/b/rootfs, so that "../../.." from
// the root reaches base, and a sentinel directory base/sentinel outside it
// holding a victim file.
type fixture struct {
	base, rootfs, sentinel, victim string
	root                           *Root
}

const victimContent = "host data, never to change\n"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	base := t.TempDir()
	fx := &fixture{
		base:     base,
		rootfs:   filepath.Join(base, "a", "b", "rootfs"),
		sentinel: filepath.Join(base, "sentinel"),
	}
	fx.victim = filepath.Join(fx.sentinel, "victim")
	for _, d := range []string{fx.rootfs, fx.sentinel} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(fx.victim, []byte(victimContent), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := OpenRoot(fx.rootfs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	fx.root = root
	return fx
}

// checkOutside fails the test when anything outside the root changed: the
// sentinel holds only the untouched victim, and base and base/a hold only
// what the fixture made.
func (fx *fixture) checkOutside(t *testing.T) {
	t.Helper()
	want := map[string][]string{
		fx.base:                          {"a", "sentinel"},
		filepath.Join(fx.base, "a"):      {"b"},
		filepath.Join(fx.base, "a", "b"): {"rootfs"},
		fx.sentinel:                      {"victim"},
	}
	for dir, names := range want {
		if got := listDir(t, dir); strings.Join(got, ",") != strings.Join(names, ",") {
			t.Errorf("outside the root, %s holds %v, want %v", dir, got, names)
		}
	}
	data, err := os.ReadFile(fx.victim)
	if err != nil || string(data) != victimContent {
		t.Errorf("victim file changed: %q, %v", data, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(fx.victim, &st); err != nil || st.Nlink != 1 {
		t.Errorf("victim file has %d links (%v), want 1", st.Nlink, err)
	}
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func (fx *fixture) in(p string) string { return filepath.Join(fx.rootfs, p) }

// tarEntry is one entry of a test archive.
type tarEntry struct {
	hdr  tar.Header
	body string
}

func makeTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		if hdr.ModTime.IsZero() {
			hdr.ModTime = time.Unix(1_600_000_000, 0)
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func file(name, body string) tarEntry { return tarEntry{hdr: tar.Header{Name: name}, body: body} }
func dir(name string) tarEntry {
	return tarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}}
}
func symlink(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}}
}
func hardlink(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to set owners")
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func lstat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

// userXattrsWork reports whether the file system of dir takes user.*
// extended attributes.
func userXattrsWork(t *testing.T, dir string) bool {
	t.Helper()
	p := filepath.Join(dir, ".xattr-probe")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(p)
	return unix.Setxattr(p, "user.probe", []byte("1"), 0) == nil
}

func TestCopyHostTree(t *testing.T) {
	requireRoot(t)
	fx := newFixture(t)
	src := t.TempDir()
	mtime := time.Date(2020, 5, 6, 7, 8, 9, 123456789, time.UTC)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "sub", "deep"), 0o755))
	must(os.WriteFile(filepath.Join(src, "plain"), []byte("plain"), 0o640))
	must(os.WriteFile(filepath.Join(src, "suid"), []byte("suid"), 0o755))
	must(os.Chmod(filepath.Join(src, "suid"), 0o755|os.ModeSetuid))
	must(os.WriteFile(filepath.Join(src, "sub", "deep", "f"), []byte("deep"), 0o600))
	must(os.Chmod(filepath.Join(src, "sub"), 0o750|os.ModeSticky))
	must(os.Symlink("sub/deep/f", filepath.Join(src, "rel-link")))
	must(os.Symlink("/etc/passwd", filepath.Join(src, "abs-link")))
	must(os.Link(filepath.Join(src, "plain"), filepath.Join(src, "sub", "hard")))
	must(unix.Mkfifo(filepath.Join(src, "fifo"), 0o600))
	must(os.Chmod(filepath.Join(src, "fifo"), 0o620))
	must(os.Chown(filepath.Join(src, "plain"), 1234, 5678))
	xattrs := userXattrsWork(t, src)
	if xattrs {
		must(unix.Setxattr(filepath.Join(src, "plain"), "user.test", []byte("value"), 0))
		must(unix.Setxattr(filepath.Join(src, "sub"), "user.dir", []byte("dirvalue"), 0))
	} else {
		t.Log("file system of the temporary directory takes no user.* xattrs; not checking them")
	}
	for _, p := range []string{"plain", "suid", "sub/deep/f", "sub/deep", "sub"} {
		must(os.Chtimes(filepath.Join(src, p), mtime, mtime))
	}
	must(unix.Lutimes(filepath.Join(src, "rel-link"), []unix.Timeval{unix.NsecToTimeval(mtime.UnixNano()), unix.NsecToTimeval(mtime.UnixNano())}))

	t.Run("root owner", func(t *testing.T) {
		if err := fx.root.CopyHost(context.Background(), src, "/dst", Options{Owner: &Owner{}}); err != nil {
			t.Fatal(err)
		}
		checks := []struct {
			path string
			mode os.FileMode
			body string
		}{
			{"dst/plain", 0o640, "plain"},
			{"dst/suid", 0o755 | os.ModeSetuid, "suid"},
			{"dst/sub/deep/f", 0o600, "deep"},
			{"dst/sub", os.ModeDir | os.ModeSticky | 0o750, ""},
			{"dst/fifo", os.ModeNamedPipe | 0o620, ""},
		}
		for _, c := range checks {
			fi, err := os.Lstat(fx.in(c.path))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != c.mode {
				t.Errorf("%s: mode %v, want %v", c.path, fi.Mode(), c.mode)
			}
			if c.body != "" && readFile(t, fx.in(c.path)) != c.body {
				t.Errorf("%s: wrong content", c.path)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if st.Uid != 0 || st.Gid != 0 {
				t.Errorf("%s: owner %d:%d, want 0:0", c.path, st.Uid, st.Gid)
			}
			if c.path != "dst/fifo" && !fi.ModTime().Equal(mtime) {
				t.Errorf("%s: mtime %v, want %v", c.path, fi.ModTime(), mtime)
			}
		}
		for link, target := range map[string]string{"dst/rel-link": "sub/deep/f", "dst/abs-link": "/etc/passwd"} {
			got, err := os.Readlink(fx.in(link))
			if err != nil || got != target {
				t.Errorf("%s: link to %q (%v), want %q", link, got, err, target)
			}
		}
		srcLink, _ := os.Lstat(filepath.Join(src, "rel-link"))
		if fi, _ := os.Lstat(fx.in("dst/rel-link")); !fi.ModTime().Equal(srcLink.ModTime()) {
			t.Errorf("symlink mtime %v, want %v", fi.ModTime(), srcLink.ModTime())
		}
		a, b := lstat(t, fx.in("dst/plain")), lstat(t, fx.in("dst/sub/hard"))
		if a.Ino != b.Ino || a.Nlink != 2 {
			t.Errorf("hard link not kept: inodes %d and %d, %d links", a.Ino, b.Ino, a.Nlink)
		}
		if xattrs {
			for p, want := range map[string]string{"dst/plain": "value", "dst/sub": "dirvalue"} {
				name := "user.test"
				if p == "dst/sub" {
					name = "user.dir"
				}
				buf := make([]byte, 64)
				n, err := unix.Lgetxattr(fx.in(p), name, buf)
				if err != nil || string(buf[:n]) != want {
					t.Errorf("%s: xattr %s = %q (%v), want %q", p, name, buf[:max(n, 0)], err, want)
				}
			}
		}
		// The destination was made, so it took the source's metadata.
		if fi, _ := os.Stat(fx.in("dst")); fi.Mode().Perm() != 0o755 {
			t.Errorf("dst: mode %v", fi.Mode())
		}
	})

	t.Run("preserve owner", func(t *testing.T) {
		if err := fx.root.CopyHost(context.Background(), src, "/kept", Options{}); err != nil {
			t.Fatal(err)
		}
		if st := lstat(t, fx.in("kept/plain")); st.Uid != 1234 || st.Gid != 5678 {
			t.Errorf("owner %d:%d, want 1234:5678", st.Uid, st.Gid)
		}
	})

	t.Run("chown and chmod", func(t *testing.T) {
		mode := uint32(0o600)
		if err := fx.root.CopyHost(context.Background(), src, "/chowned", Options{Owner: &Owner{UID: 42, GID: 43}, Mode: &mode}); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"chowned/plain", "chowned/sub", "chowned/sub/deep/f", "chowned/rel-link"} {
			st := lstat(t, fx.in(p))
			if st.Uid != 42 || st.Gid != 43 {
				t.Errorf("%s: owner %d:%d, want 42:43", p, st.Uid, st.Gid)
			}
			if p != "chowned/rel-link" && st.Mode&0o7777 != 0o600 {
				t.Errorf("%s: mode %o, want 600", p, st.Mode&0o7777)
			}
		}
	})

	t.Run("existing destination keeps its metadata", func(t *testing.T) {
		must(os.MkdirAll(fx.in("existing"), 0o711))
		must(os.Chmod(fx.in("existing"), 0o711))
		if err := fx.root.CopyHost(context.Background(), src, "/existing", Options{Owner: &Owner{}}); err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(fx.in("existing")); fi.Mode().Perm() != 0o711 {
			t.Errorf("existing destination: mode %v, want 0711", fi.Mode())
		}
		if readFile(t, fx.in("existing/plain")) != "plain" {
			t.Error("contents not copied into the existing directory")
		}
	})

	t.Run("single file", func(t *testing.T) {
		if err := fx.root.CopyHost(context.Background(), filepath.Join(src, "suid"), "/made/on/the/way/name", Options{Owner: &Owner{}}); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(fx.in("made/on/the/way/name"))
		if err != nil || fi.Mode() != 0o755|os.ModeSetuid {
			t.Fatalf("copied file: %v, %v", fi, err)
		}
	})
	fx.checkOutside(t)
}

func TestCopyHostReservedName(t *testing.T) {
	fx := newFixture(t)
	src := filepath.Join(fx.base, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, ".wh.gone"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := fx.root.CopyHost(context.Background(), src, "/d", Options{Owner: &Owner{}})
	if !errors.Is(err, ErrReservedName) {
		t.Fatalf("copying .wh.gone: %v, want ErrReservedName", err)
	}
	if _, err := os.Lstat(fx.in("d/.wh.gone")); err == nil {
		t.Error(".wh.gone was written")
	}
}

func TestExtract(t *testing.T) {
	requireRoot(t)
	fx := newFixture(t)
	mtime := time.Unix(1_500_000_000, 0)
	top := dir("./")
	top.hdr.Mode = 0o750
	top.hdr.ModTime = mtime
	f := file("d/file", "content")
	f.hdr.Uid, f.hdr.Gid, f.hdr.Mode, f.hdr.ModTime = 1000, 1001, 0o4711, mtime
	f.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.k": "v", "SCHILY.xattr.security.selinux": "system_u:object_r:bin_t:s0"}
	d := dir("d")
	d.hdr.ModTime = mtime
	d.hdr.Mode = 0o700
	archive := makeTar(t,
		top,
		d,
		f,
		symlink("d/link", "/d/file"),
		hardlink("d/hard", "d/file"),
		hardlink("/abs-hard", "/d/file"),
		tarEntry{hdr: tar.Header{Name: "d/fifo", Typeflag: tar.TypeFifo, Mode: 0o600}},
		file("implied/parent/f", "x"),
	)
	if err := fx.root.Extract(context.Background(), bytes.NewReader(archive), "/x", Options{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(fx.in("x/d/file"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != os.ModeSetuid|0o711 || !fi.ModTime().Equal(mtime) {
		t.Errorf("file: mode %v mtime %v", fi.Mode(), fi.ModTime())
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Gid != 1001 || st.Nlink != 3 {
		t.Errorf("file: owner %d:%d, %d links; want 1000:1001, 3", st.Uid, st.Gid, st.Nlink)
	}
	if readFile(t, fx.in("x/d/file")) != "content" {
		t.Error("file: wrong content")
	}
	if target, _ := os.Readlink(fx.in("x/d/link")); target != "/d/file" {
		t.Errorf("symlink target %q", target)
	}
	if lstat(t, fx.in("x/abs-hard")).Ino != lstat(t, fx.in("x/d/file")).Ino {
		t.Error("hard link with an absolute target not made from the extraction directory")
	}
	for p, want := range map[string]os.FileMode{"x": os.ModeDir | 0o750, "x/d": os.ModeDir | 0o700} {
		fi, err := os.Lstat(fx.in(p))
		if err != nil || fi.Mode() != want || !fi.ModTime().Equal(mtime) {
			t.Errorf("%s: %v (%v), want mode %v mtime %v", p, fi.Mode(), err, want, mtime)
		}
	}
	if userXattrsWork(t, fx.rootfs) {
		buf := make([]byte, 16)
		n, err := unix.Lgetxattr(fx.in("x/d/file"), "user.k", buf)
		if err != nil || string(buf[:n]) != "v" {
			t.Errorf("xattr user.k = %q, %v", buf[:max(n, 0)], err)
		}
		if _, err := unix.Lgetxattr(fx.in("x/d/file"), "security.selinux", buf); err == nil && string(buf) == "system_u:object_r:bin_t:s0" {
			t.Error("security.selinux was copied")
		}
	}
	fx.checkOutside(t)
}

func TestExtractReplaces(t *testing.T) {
	fx := newFixture(t)
	for _, p := range []string{"dir-to-file/child", "kept-dir"} {
		if err := os.MkdirAll(fx.in(p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(fx.in("kept-dir/old"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fx.in("file-to-dir"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	archive := makeTar(t, file("dir-to-file", "now a file"), dir("file-to-dir"), file("file-to-dir/f", "x"), dir("kept-dir"), file("kept-dir/new", "new"))
	if err := fx.root.Extract(context.Background(), bytes.NewReader(archive), "/", Options{Owner: &Owner{UID: os.Geteuid(), GID: os.Getegid()}}); err != nil {
		t.Fatal(err)
	}
	if readFile(t, fx.in("dir-to-file")) != "now a file" {
		t.Error("a directory was not replaced by a file")
	}
	if readFile(t, fx.in("file-to-dir/f")) != "x" {
		t.Error("a file was not replaced by a directory")
	}
	if readFile(t, fx.in("kept-dir/old")) != "old" || readFile(t, fx.in("kept-dir/new")) != "new" {
		t.Error("an existing directory was not merged")
	}
}

func TestOpenArchive(t *testing.T) {
	dirPath := t.TempDir()
	plain := makeTar(t, file("hello", "world"))
	compress := map[Format]func(t *testing.T, data []byte) []byte{
		Tar: func(t *testing.T, data []byte) []byte { return data },
		Gzip: func(t *testing.T, data []byte) []byte {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(data)
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		},
		Zstd: func(t *testing.T, data []byte) []byte {
			var buf bytes.Buffer
			zw, err := zstd.NewWriter(&buf)
			if err != nil {
				t.Fatal(err)
			}
			zw.Write(data)
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			return buf.Bytes()
		},
		Bzip2: func(t *testing.T, data []byte) []byte { return shellCompress(t, "bzip2", data) },
		Xz:    func(t *testing.T, data []byte) []byte { return shellCompress(t, "xz", data) },
	}
	for format, fn := range compress {
		t.Run(format.String(), func(t *testing.T) {
			for _, c := range []struct {
				name string
				data []byte
				want Format
			}{
				{"archive", plain, format},
				{"not a tar", []byte(strings.Repeat("not a tar archive\n", 100)), NotArchive},
			} {
				p := filepath.Join(dirPath, format.String()+"-"+strings.ReplaceAll(c.name, " ", "-"))
				if err := os.WriteFile(p, fn(t, c.data), 0o644); err != nil {
					t.Fatal(err)
				}
				rc, got, err := OpenArchive(p)
				if err != nil {
					t.Fatal(err)
				}
				if got != c.want {
					t.Errorf("%s: format %v, want %v", c.name, got, c.want)
				}
				if rc == nil {
					continue
				}
				tr := tar.NewReader(rc)
				hdr, err := tr.Next()
				if err != nil || hdr.Name != "hello" {
					t.Errorf("%s: first entry %v, %v", c.name, hdr, err)
				} else if body, _ := io.ReadAll(tr); string(body) != "world" {
					t.Errorf("%s: entry content %q", c.name, body)
				}
				if err := rc.Close(); err != nil {
					t.Error(err)
				}
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		p := filepath.Join(dirPath, "empty")
		os.WriteFile(p, nil, 0o644)
		if rc, f, err := OpenArchive(p); rc != nil || f != NotArchive || err != nil {
			t.Errorf("empty file: %v %v %v", rc, f, err)
		}
	})
}

// shellCompress compresses data with the named tool, or skips the test when
// it is not installed.
func shellCompress(t *testing.T, tool string, data []byte) []byte {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s is not installed; not testing %s archives", tool, tool)
	}
	cmd := exec.Command(tool, "-c")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	return out
}

func TestLookupOwner(t *testing.T) {
	fx := newFixture(t)
	if err := os.MkdirAll(fx.in("etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(fx.in("etc/passwd"), []byte("# comment\nroot:x:0:0:root:/root:/bin/sh\nalice:x:1234:100::/home/alice:/bin/sh\nbroken:x:oops:1\n"), 0o644)
	os.WriteFile(fx.in("etc/group"), []byte("root:x:0:\nusers:x:100:\nstaff:x:50:alice\n"), 0o644)
	for _, c := range []struct {
		spec    string
		want    Owner
		wantErr error
	}{
		{spec: "0", want: Owner{0, 0}},
		{spec: "1000", want: Owner{1000, 1000}},
		{spec: "1000:2000", want: Owner{1000, 2000}},
		{spec: "alice", want: Owner{1234, 100}},
		{spec: "alice:staff", want: Owner{1234, 50}},
		{spec: "7:staff", want: Owner{7, 50}},
		{spec: "alice:9", want: Owner{1234, 9}},
		{spec: "bob", wantErr: ErrUnknownUser},
		{spec: "alice:nogroup", wantErr: ErrUnknownUser},
		{spec: "", wantErr: ErrInvalidChown},
		{spec: ":staff", wantErr: ErrInvalidChown},
		{spec: "alice:", wantErr: ErrInvalidChown},
		{spec: "a:b:c", wantErr: ErrInvalidChown},
		{spec: "4294967296", wantErr: ErrInvalidChown},
	} {
		got, err := fx.root.LookupOwner(c.spec)
		if c.wantErr != nil {
			if !errors.Is(err, c.wantErr) {
				t.Errorf("%q: %v, want %v", c.spec, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %+v, %v; want %+v", c.spec, got, err, c.want)
		}
	}
}

// TestConfinement tries every way out of the root we know of; each must
// either write inside the root or fail, and leave the outside unchanged.
func TestConfinement(t *testing.T) {
	ctx := context.Background()
	hostFile := func(t *testing.T, fx *fixture) string {
		p := filepath.Join(t.TempDir(), "payload")
		if err := os.WriteFile(p, []byte("payload"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	link := func(t *testing.T, fx *fixture, name, target string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(fx.in(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, fx.in(name)); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("container symlink to /", func(t *testing.T) {
		fx := newFixture(t)
		link(t, fx, "escape", "/")
		dst := "/escape" + fx.sentinel + "/pwned"
		if err := fx.root.CopyHost(ctx, hostFile(t, fx), dst, Options{}); err != nil {
			t.Fatal(err)
		}
		if readFile(t, fx.in(fx.sentinel+"/pwned")) != "payload" {
			t.Error("the write did not land inside the root")
		}
		fx.checkOutside(t)
	})

	t.Run("container symlink to /etc", func(t *testing.T) {
		fx := newFixture(t)
		link(t, fx, "cfg", "/etc")
		os.MkdirAll(fx.in("etc"), 0o755)
		name := "bricklayer-confinement-test-" + filepath.Base(fx.base)
		err := fx.root.CopyHost(ctx, hostFile(t, fx), "/cfg/"+name, Options{})
		if _, serr := os.Lstat("/etc/" + name); serr == nil {
			os.Remove("/etc/" + name)
			t.Fatal("a write through a symlink to /etc landed in the host's /etc")
		}
		if err != nil {
			t.Fatal(err)
		}
		if readFile(t, fx.in("etc/"+name)) != "payload" {
			t.Error("the write did not land in the root's /etc")
		}
		fx.checkOutside(t)
	})

	t.Run("container symlink to ../../..", func(t *testing.T) {
		fx := newFixture(t)
		link(t, fx, "up", "../../..")
		if err := fx.root.CopyHost(ctx, hostFile(t, fx), "/up/sentinel/pwned", Options{}); err != nil {
			t.Fatal(err)
		}
		if readFile(t, fx.in("sentinel/pwned")) != "payload" {
			t.Error("the write did not land inside the root")
		}
		fx.checkOutside(t)
	})

	t.Run("container symlink in a directory copy", func(t *testing.T) {
		fx := newFixture(t)
		link(t, fx, "dst/sub", "../../../../sentinel")
		src := t.TempDir()
		os.MkdirAll(filepath.Join(src, "sub"), 0o755)
		os.WriteFile(filepath.Join(src, "sub", "victim"), []byte("overwritten"), 0o644)
		if err := fx.root.CopyHost(ctx, src, "/dst", Options{}); err != nil {
			t.Fatal(err)
		}
		// The symlink is replaced by the source's directory.
		if readFile(t, fx.in("dst/sub/victim")) != "overwritten" {
			t.Error("the directory was not copied inside the root")
		}
		fx.checkOutside(t)
	})

	t.Run("destination is a symlink to a host file", func(t *testing.T) {
		fx := newFixture(t)
		link(t, fx, "target", fx.victim)
		link(t, fx, "rel-target", "../../../sentinel/victim")
		for _, dst := range []string{"/target", "/rel-target"} {
			if err := fx.root.CopyHost(ctx, hostFile(t, fx), dst, Options{}); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Lstat(fx.in(dst))
			if err != nil || !fi.Mode().IsRegular() {
				t.Errorf("%s: %v, %v; want the symlink replaced by a file", dst, fi, err)
			}
		}
		fx.checkOutside(t)
	})

	t.Run("passwd read through /etc symlink", func(t *testing.T) {
		fx := newFixture(t)
		link(t, fx, "etc", "../../..")
		// /etc/passwd in the container is therefore /passwd in the root, not
		// the host's.
		if _, err := fx.root.LookupOwner("root"); !errors.Is(err, ErrUnknownUser) {
			t.Errorf("looking up root with no passwd in the container: %v, want ErrUnknownUser", err)
		}
		os.WriteFile(fx.in("passwd"), []byte("alice:x:1234:99::/:/bin/sh\n"), 0o644)
		if o, err := fx.root.LookupOwner("alice"); err != nil || o != (Owner{1234, 99}) {
			t.Errorf("alice: %+v, %v", o, err)
		}
		fx.checkOutside(t)
	})

	archiveCases := []struct {
		name    string
		prepare func(t *testing.T, fx *fixture)
		entries func(fx *fixture) []tarEntry
		wantErr error // nil: the extraction may succeed or fail
		inside  string
	}{
		{
			name:    "entry ../x",
			entries: func(fx *fixture) []tarEntry { return []tarEntry{file("../x", "payload")} },
			wantErr: ErrPathEscape,
		},
		{
			name:    "entry climbing to the sentinel",
			entries: func(fx *fixture) []tarEntry { return []tarEntry{file("ok/../../../../sentinel/pwned", "payload")} },
			wantErr: ErrPathEscape,
		},
		{
			name:    "absolute entry",
			entries: func(fx *fixture) []tarEntry { return []tarEntry{file(fx.sentinel+"/pwned", "payload")} },
			inside:  "dst" + "/SENTINEL/pwned",
		},
		{
			name: "symlink to the sentinel, then a write through it",
			entries: func(fx *fixture) []tarEntry {
				return []tarEntry{symlink("lnk", fx.sentinel), file("lnk/pwned", "payload")}
			},
		},
		{
			name: "relative symlink out, then a write through it",
			entries: func(fx *fixture) []tarEntry {
				return []tarEntry{symlink("lnk", "../../../.."), file("lnk/sentinel/pwned", "payload")}
			},
			// Paths are resolved with the destination as their root.
			inside: "dst/sentinel/pwned",
		},
		{
			name: "symlink to /, then a victim's path through it",
			entries: func(fx *fixture) []tarEntry {
				return []tarEntry{symlink("lnk", "/"), file("lnk"+fx.victim, "payload")}
			},
			inside: "dst/SENTINEL/victim",
		},
		{
			name:    "hard link climbing out",
			entries: func(fx *fixture) []tarEntry { return []tarEntry{hardlink("h", "../../../../sentinel/victim")} },
			wantErr: ErrPathEscape,
		},
		{
			name: "hard link through a symlink to /",
			entries: func(fx *fixture) []tarEntry {
				return []tarEntry{symlink("lnk", "/"), hardlink("h", "lnk"+fx.victim)}
			},
		},
		{
			name: "hard link to a planted symlink, then a write to it",
			prepare: func(t *testing.T, fx *fixture) {
				link(t, fx, "dst/planted", fx.victim)
			},
			entries: func(fx *fixture) []tarEntry {
				return []tarEntry{hardlink("h", "/planted"), file("h", "payload")}
			},
			inside: "dst/h",
		},
		{
			name: "entry over a planted symlink to a host file",
			prepare: func(t *testing.T, fx *fixture) {
				link(t, fx, "dst/victim", fx.victim)
				link(t, fx, "dst/rel", "../../../../sentinel/victim")
			},
			entries: func(fx *fixture) []tarEntry { return []tarEntry{file("victim", "payload"), file("rel", "payload")} },
			inside:  "dst/victim",
		},
		{
			name: "planted directory symlink under the destination",
			prepare: func(t *testing.T, fx *fixture) {
				link(t, fx, "dst/sub", "../../../../sentinel")
				os.MkdirAll(fx.in("sentinel"), 0o755)
				os.MkdirAll(fx.in("dst/sentinel"), 0o755)
			},
			entries: func(fx *fixture) []tarEntry { return []tarEntry{file("sub/pwned", "payload")} },
			inside:  "dst/sentinel/pwned",
		},
		{
			name: "destination is a symlink out",
			prepare: func(t *testing.T, fx *fixture) {
				link(t, fx, "dst", "../../../sentinel")
				os.MkdirAll(fx.in("sentinel"), 0o755)
			},
			entries: func(fx *fixture) []tarEntry { return []tarEntry{dir("./"), file("pwned", "payload")} },
			inside:  "sentinel/pwned",
		},
	}
	for _, c := range archiveCases {
		t.Run(c.name, func(t *testing.T) {
			fx := newFixture(t)
			if c.prepare != nil {
				c.prepare(t, fx)
			}
			archive := makeTar(t, c.entries(fx)...)
			err := fx.root.Extract(ctx, bytes.NewReader(archive), "/dst", Options{Owner: &Owner{UID: os.Geteuid(), GID: os.Getegid()}})
			t.Logf("extraction: %v", err)
			if c.wantErr != nil && !errors.Is(err, c.wantErr) {
				t.Errorf("error %v, want %v", err, c.wantErr)
			}
			if c.inside != "" {
				p := fx.in(strings.ReplaceAll(c.inside, "SENTINEL", fx.sentinel))
				if err != nil {
					t.Errorf("want the write inside the root at %s, got %v", p, err)
				} else if got := readFile(t, p); got != "payload" {
					t.Errorf("%s holds %q", p, got)
				}
			}
			fx.checkOutside(t)
		})
	}
}

// TestExtractStaysInDestination: an archive's own symlink to "/" leads
// neither a later entry nor a hard link to the container's files outside
// the destination: the entry lands under the destination, as with Docker's
// ADD, and the link to /etc/passwd finds no such file there.
func TestExtractStaysInDestination(t *testing.T) {
	fx := newFixture(t)
	if err := os.MkdirAll(fx.in("etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fx.in("etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	archive := makeTar(t, symlink("root", "/"), file("root/etc/owned", "payload"), hardlink("stolen", "root/etc/passwd"))
	err := fx.root.Extract(context.Background(), bytes.NewReader(archive), "/t", Options{Owner: &Owner{UID: os.Geteuid(), GID: os.Getegid()}})
	if err == nil {
		t.Error("a hard link to a file outside the destination was made")
	}
	if got := readFile(t, fx.in("t/etc/owned")); got != "payload" {
		t.Errorf("t/etc/owned holds %q", got)
	}
	if _, err := os.Lstat(fx.in("etc/owned")); err == nil {
		t.Error("the entry under the archive's symlink to / was written outside the destination")
	}
	if fi, err := os.Stat(fx.in("etc/passwd")); err != nil || fi.Sys().(*syscall.Stat_t).Nlink != 1 {
		t.Errorf("/etc/passwd was linked to: %v %v", fi, err)
	}
}
