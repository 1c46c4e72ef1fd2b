package bricklayer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// newContentBuilder makes a scratch builder in a fresh store.
func newContentBuilder(t *testing.T) *Builder {
	t.Helper()
	b, err := NewBuilder(context.Background(), newTestStore(t), BuilderOptions{FromImage: Scratch, Container: "content"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// builderRoot mounts b for the rest of the test and returns where.
func builderRoot(t *testing.T, b *Builder) string {
	t.Helper()
	mp, err := b.Mount()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Unmount() })
	return mp
}

// writeHostFiles makes files under a new temporary directory: each key is
// a slash-separated relative path, each value its content.
func writeHostFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func ownerOf(t *testing.T, p string) (uint32, uint32) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid
}

func TestCopyDestinations(t *testing.T) {
	ctx := context.Background()
	b := newContentBuilder(t)
	src := writeHostFiles(t, map[string]string{
		"one.txt": "one", "two.txt": "two", "tree/a": "a", "tree/sub/b": "b",
	})
	in := func(p string) string { return filepath.Join(src, p) }
	b.mu.Lock()
	b.state.OCIConfig.Config.WorkingDir = "/work"
	b.mu.Unlock()

	cases := []struct {
		name    string
		dest    string
		sources []string
		want    map[string]string // path in the container -> content
	}{
		{"file to a new name", "/renamed", []string{in("one.txt")}, map[string]string{"renamed": "one"}},
		{"file into a directory", "/dir/", []string{in("one.txt")}, map[string]string{"dir/one.txt": "one"}},
		{"file into an existing directory", "/dir", []string{in("two.txt")}, map[string]string{"dir/two.txt": "two"}},
		{"several files make a directory", "/many", []string{in("one.txt"), in("two.txt")}, map[string]string{"many/one.txt": "one", "many/two.txt": "two"}},
		{"glob", "/globbed", []string{in("*.txt")}, map[string]string{"globbed/one.txt": "one", "globbed/two.txt": "two"}},
		{"directory contents", "/tree-copy", []string{in("tree")}, map[string]string{"tree-copy/a": "a", "tree-copy/sub/b": "b"}},
		{"relative to the working directory", "rel/", []string{in("one.txt")}, map[string]string{"work/rel/one.txt": "one"}},
		{"dot is the working directory", ".", []string{in("two.txt")}, map[string]string{"work/two.txt": "two"}},
		{"root", "/", []string{in("one.txt")}, map[string]string{"one.txt": "one"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := b.Copy(ctx, c.dest, AddOptions{}, c.sources...); err != nil {
				t.Fatal(err)
			}
			if mp := b.MountPoint(); mp != "" {
				t.Errorf("Copy left the container mounted at %s", mp)
			}
			mp := builderRoot(t, b)
			for p, want := range c.want {
				if got := mustRead(t, filepath.Join(mp, p)); got != want {
					t.Errorf("%s holds %q, want %q", p, got, want)
				}
				if uid, gid := ownerOf(t, filepath.Join(mp, p)); uid != 0 || gid != 0 {
					t.Errorf("%s owned by %d:%d, want 0:0", p, uid, gid)
				}
			}
		})
	}

	t.Run("mounted before", func(t *testing.T) {
		mp := builderRoot(t, b)
		if err := b.Copy(ctx, "/still", AddOptions{}, in("one.txt")); err != nil {
			t.Fatal(err)
		}
		if b.MountPoint() != mp {
			t.Errorf("Copy unmounted a container it did not mount")
		}
	})

	errCases := []struct {
		name    string
		sources []string
		opts    AddOptions
		want    error
		quoted  string
	}{
		{name: "glob without match", sources: []string{in("*.none")}, want: ErrNoSource, quoted: "*.none"},
		{name: "missing file", sources: []string{in("nothing")}, want: ErrNoSource, quoted: "nothing"},
		{name: "no source", want: ErrNoSource},
		{name: "bad chmod", sources: []string{in("one.txt")}, opts: AddOptions{Chmod: "u+x"}, want: ErrInvalidChmod, quoted: "u+x"},
		{name: "chmod too large", sources: []string{in("one.txt")}, opts: AddOptions{Chmod: "17777"}, want: ErrInvalidChmod},
		{name: "bad chown", sources: []string{in("one.txt")}, opts: AddOptions{Chown: "a:b:c"}, want: ErrInvalidChown},
		{name: "unknown user", sources: []string{in("one.txt")}, opts: AddOptions{Chown: "nobody-here"}, want: ErrUnknownUser, quoted: "nobody-here"},
	}
	for _, c := range errCases {
		t.Run(c.name, func(t *testing.T) {
			err := b.Copy(ctx, "/x/", c.opts, c.sources...)
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if c.quoted != "" && !strings.Contains(err.Error(), c.quoted) {
				t.Errorf("error %q does not name %q", err, c.quoted)
			}
		})
	}
}

func TestCopyOwnershipAndModes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to set owners")
	}
	ctx := context.Background()
	b := newContentBuilder(t)
	etc := writeHostFiles(t, map[string]string{
		"passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1500:1600::/home/app:/bin/sh\n",
		"group":  "root:x:0:\napp:x:1600:\nstaff:x:50:app\n",
	})
	if err := b.Copy(ctx, "/etc/", AddOptions{}, filepath.Join(etc, "passwd"), filepath.Join(etc, "group")); err != nil {
		t.Fatal(err)
	}
	src := writeHostFiles(t, map[string]string{"f": "f", "d/g": "g"})
	if err := os.Chown(filepath.Join(src, "f"), 321, 654); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		opts     AddOptions
		dest     string
		uid, gid uint32
		mode     os.FileMode // 0: the host file's
	}{
		{AddOptions{}, "/default", 0, 0, 0},
		{AddOptions{PreserveOwnership: true}, "/preserved", 321, 654, 0},
		{AddOptions{Chown: "1000"}, "/uid", 1000, 1000, 0},
		{AddOptions{Chown: "1000:2000"}, "/uidgid", 1000, 2000, 0},
		{AddOptions{Chown: "app"}, "/name", 1500, 1600, 0},
		{AddOptions{Chown: "app:staff"}, "/names", 1500, 50, 0},
		{AddOptions{Chown: "app:7", Chmod: "0750"}, "/chmod", 1500, 7, 0o750},
		{AddOptions{Chmod: "4755"}, "/setuid", 0, 0, os.ModeSetuid | 0o755},
	} {
		t.Run(strings.TrimPrefix(c.dest, "/"), func(t *testing.T) {
			if err := b.Copy(ctx, c.dest, c.opts, src); err != nil {
				t.Fatal(err)
			}
			mp := builderRoot(t, b)
			for _, p := range []string{"f", "d", "d/g", "link"} {
				full := filepath.Join(mp, c.dest, p)
				uid, gid := ownerOf(t, full)
				if p == "f" && c.opts.PreserveOwnership {
					if uid != c.uid || gid != c.gid {
						t.Errorf("%s owned by %d:%d, want %d:%d", p, uid, gid, c.uid, c.gid)
					}
					continue
				}
				if c.opts.PreserveOwnership {
					continue
				}
				if uid != c.uid || gid != c.gid {
					t.Errorf("%s owned by %d:%d, want %d:%d", p, uid, gid, c.uid, c.gid)
				}
				fi, _ := os.Lstat(full)
				var want os.FileMode
				switch {
				case p == "link":
					want = os.ModeSymlink | 0o777
				case c.mode != 0:
					want = fi.Mode().Type() | c.mode
				case p == "d":
					want = os.ModeDir | 0o755
				default:
					want = 0o644
				}
				if fi.Mode() != want {
					t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
				}
			}
		})
	}
}

func TestCopyLinksAndXattrs(t *testing.T) {
	ctx := context.Background()
	b := newContentBuilder(t)
	src := writeHostFiles(t, map[string]string{"data": "shared"})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Link(filepath.Join(src, "data"), filepath.Join(src, "hard")))
	must(os.Symlink("/data", filepath.Join(src, "abs")))
	must(os.Symlink("../outside", filepath.Join(src, "rel")))
	mtime := time.Date(2021, 1, 2, 3, 4, 5, 0, time.UTC)
	must(os.Chtimes(filepath.Join(src, "data"), mtime, mtime))
	xattrs := unix.Setxattr(filepath.Join(src, "data"), "user.bricklayer", []byte("yes"), 0) == nil
	if !xattrs {
		t.Log("the temporary directory's file system takes no user.* xattrs; not checking them")
	}
	if err := b.Copy(ctx, "/l", AddOptions{}, src); err != nil {
		t.Fatal(err)
	}
	mp := builderRoot(t, b)
	var a, h unix.Stat_t
	must(unix.Lstat(filepath.Join(mp, "l/data"), &a))
	must(unix.Lstat(filepath.Join(mp, "l/hard"), &h))
	if a.Ino != h.Ino {
		t.Error("hard link became two files")
	}
	for name, want := range map[string]string{"abs": "/data", "rel": "../outside"} {
		if got, err := os.Readlink(filepath.Join(mp, "l", name)); err != nil || got != want {
			t.Errorf("symlink %s -> %q (%v), want %q", name, got, err, want)
		}
	}
	if fi, _ := os.Stat(filepath.Join(mp, "l/data")); !fi.ModTime().Equal(mtime) {
		t.Errorf("mtime %v, want %v", fi.ModTime(), mtime)
	}
	if xattrs {
		buf := make([]byte, 16)
		n, err := unix.Lgetxattr(filepath.Join(mp, "l/data"), "user.bricklayer", buf)
		if errors.Is(err, unix.ENOTSUP) {
			t.Log("the store's file system takes no user.* xattrs")
		} else if err != nil || string(buf[:n]) != "yes" {
			t.Errorf("xattr user.bricklayer = %q, %v", buf[:max(n, 0)], err)
		}
	}
}

// archiveFixture writes the same small tree as a tar archive in each format
// and returns the paths by format name; formats whose tool is missing are
// left out with a log line.
func archiveFixture(t *testing.T) map[string]string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1_600_000_000, 0)
	for _, e := range []struct {
		hdr  tar.Header
		body string
	}{
		{tar.Header{Name: "top/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime}, ""},
		{tar.Header{Name: "top/file", Typeflag: tar.TypeReg, Mode: 0o640, Uid: 77, Gid: 88, ModTime: mtime}, "from the archive"},
		{tar.Header{Name: "top/link", Typeflag: tar.TypeSymlink, Linkname: "file", Mode: 0o777, ModTime: mtime}, ""},
		{tar.Header{Name: "top/hard", Typeflag: tar.TypeLink, Linkname: "top/file", ModTime: mtime}, ""},
	} {
		hdr := e.hdr
		hdr.Size = int64(len(e.body))
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	plain := buf.Bytes()
	dir := t.TempDir()
	out := map[string]string{}
	write := func(name string, data []byte) {
		p := filepath.Join(dir, name+".archive")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		out[name] = p
	}
	write("tar", plain)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	write("gzip", gz.Bytes())
	var zs bytes.Buffer
	enc, err := zstd.NewWriter(&zs)
	if err != nil {
		t.Fatal(err)
	}
	enc.Write(plain)
	enc.Close()
	write("zstd", zs.Bytes())
	for _, tool := range []string{"bzip2", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Logf("%s is not installed; not testing %s archives", tool, tool)
			continue
		}
		cmd := exec.Command(tool, "-c")
		cmd.Stdin = bytes.NewReader(plain)
		data, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		write(tool, data)
	}
	return out
}

func TestAddArchives(t *testing.T) {
	ctx := context.Background()
	b := newContentBuilder(t)
	archives := archiveFixture(t)
	for _, format := range []string{"tar", "gzip", "bzip2", "xz", "zstd"} {
		t.Run(format, func(t *testing.T) {
			p, ok := archives[format]
			if !ok {
				t.Skipf("no %s archive (tool missing)", format)
			}
			if err := b.Add(ctx, "/add-"+format, AddOptions{}, p); err != nil {
				t.Fatal(err)
			}
			if err := b.Copy(ctx, "/copy-"+format+"/", AddOptions{}, p); err != nil {
				t.Fatal(err)
			}
			mp := builderRoot(t, b)
			ex := filepath.Join(mp, "add-"+format, "top")
			if got := mustRead(t, filepath.Join(ex, "file")); got != "from the archive" {
				t.Errorf("extracted file holds %q", got)
			}
			if target, err := os.Readlink(filepath.Join(ex, "link")); err != nil || target != "file" {
				t.Errorf("extracted symlink -> %q, %v", target, err)
			}
			var a, h unix.Stat_t
			unix.Lstat(filepath.Join(ex, "file"), &a)
			unix.Lstat(filepath.Join(ex, "hard"), &h)
			if a.Ino == 0 || a.Ino != h.Ino {
				t.Error("extracted hard link is not one")
			}
			if fi, _ := os.Lstat(filepath.Join(ex, "file")); fi.Mode() != 0o640 {
				t.Errorf("extracted file mode %v, want 0640", fi.Mode())
			}
			if os.Geteuid() == 0 {
				if uid, gid := ownerOf(t, filepath.Join(ex, "file")); uid != 77 || gid != 88 {
					t.Errorf("extracted file owned by %d:%d, want the archive's 77:88", uid, gid)
				}
			}
			// Copy never extracts.
			want, _ := os.ReadFile(p)
			if got := mustRead(t, filepath.Join(mp, "copy-"+format, filepath.Base(p))); got != string(want) {
				t.Error("Copy did not copy the archive as it is")
			}
		})
	}

	t.Run("chown applies to entries", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to set owners")
		}
		if err := b.Add(ctx, "/chowned", AddOptions{Chown: "5:6"}, archives["gzip"]); err != nil {
			t.Fatal(err)
		}
		mp := builderRoot(t, b)
		if uid, gid := ownerOf(t, filepath.Join(mp, "chowned/top/file")); uid != 5 || gid != 6 {
			t.Errorf("owned by %d:%d, want 5:6", uid, gid)
		}
	})

	t.Run("compressed non-archive is copied", func(t *testing.T) {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write([]byte(strings.Repeat("just text\n", 100)))
		zw.Close()
		p := filepath.Join(t.TempDir(), "notes.tar.gz")
		os.WriteFile(p, gz.Bytes(), 0o644)
		if err := b.Add(ctx, "/notes/", AddOptions{}, p); err != nil {
			t.Fatal(err)
		}
		mp := builderRoot(t, b)
		if got := mustRead(t, filepath.Join(mp, "notes", "notes.tar.gz")); got != gz.String() {
			t.Error("a gzip file that holds no tar archive was not copied as it is")
		}
	})

	t.Run("urls are refused", func(t *testing.T) {
		if err := b.Add(ctx, "/u/", AddOptions{}, "https://example.com/x.tar"); err == nil {
			t.Error("Add fetched or accepted a URL")
		}
	})
}

// TestAddConfinement runs the escapes through the Builder API; the copier
// package tests them all in detail.
func TestAddConfinement(t *testing.T) {
	ctx := context.Background()
	b := newContentBuilder(t)
	sentinel := t.TempDir()
	victim := filepath.Join(sentinel, "victim")
	os.WriteFile(victim, []byte("host"), 0o644)
	mp := builderRoot(t, b)
	os.Symlink("/", filepath.Join(mp, "escape"))
	os.Symlink("../../../../../../../../../..", filepath.Join(mp, "up"))
	src := writeHostFiles(t, map[string]string{"pwned": "payload"})

	for _, dest := range []string{"/escape" + sentinel + "/", "/up" + sentinel + "/"} {
		if err := b.Copy(ctx, dest, AddOptions{}, filepath.Join(src, "pwned")); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, filepath.Join(mp, sentinel, "pwned")); got != "payload" {
			t.Errorf("copy through %s did not land inside the root", dest)
		}
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "../../../../../../../../.." + victim, Typeflag: tar.TypeReg, Size: 7, Mode: 0o644})
	tw.Write([]byte("payload"))
	tw.Close()
	evil := filepath.Join(t.TempDir(), "evil.tar")
	os.WriteFile(evil, buf.Bytes(), 0o644)
	if err := b.Add(ctx, "/", AddOptions{}, evil); !errors.Is(err, ErrPathEscape) {
		t.Errorf("adding an archive with a ../ entry: %v, want ErrPathEscape", err)
	}

	ents, _ := os.ReadDir(sentinel)
	if len(ents) != 1 || mustRead(t, victim) != "host" {
		t.Errorf("the sentinel directory outside the root changed: %d entries", len(ents))
	}
}
