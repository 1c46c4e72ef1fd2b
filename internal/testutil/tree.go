// Package testutil holds helpers for tests that need real file trees and
// real tools: a tree filler with varied content, a tree comparer, a local
// registry and external-tool lookup. It is imported by tests only.
package testutil

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Owned reports whether the tree helpers may change owners: only root can
// give a file to another user.
func Owned() bool { return os.Geteuid() == 0 }

// FillTree writes a varied tree under root, which must exist: directories
// several levels deep, regular files from empty to about 1.5 MiB (about
// 2 MiB in all, half of it incompressible), relative, absolute and dangling
// symbolic links, a symbolic link to a directory, hard links (two and three
// names), a FIFO, an empty directory, a read-only directory, names with
// spaces, non-ASCII and a path longer than 100 bytes, and modes with the
// setuid, setgid and sticky bits. When [Owned], files are given several
// owners with os.Lchown, symbolic links included. The content is the same
// for the same seed.
func FillTree(t testing.TB, root string, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	text := func(n int) []byte {
		words := []string{"brick", "layer", "mortar", "image", "tar", "blob", "digest", "\n"}
		var buf bytes.Buffer
		for buf.Len() < n {
			buf.WriteString(words[rng.IntN(len(words))])
			buf.WriteByte(' ')
		}
		return buf.Bytes()[:n]
	}
	half := func(n int) []byte { // half random, half compressible
		return append(random(n/2), bytes.Repeat([]byte{0}, n-n/2)...)
	}
	longDir := filepath.Join("deep", strings.Repeat("d", 60), strings.Repeat("e", 60))

	dirs := []struct {
		name string
		mode os.FileMode
	}{
		{"etc", 0o755},
		{"bin", 0o755},
		{"usr/lib/bricklayer", 0o755},
		{"usr/share/doc", 0o755},
		{"home/user", 0o750},
		{"tmp", 0o777 | os.ModeSticky},
		{"var/empty", 0o700},
		{"srv/shared", 0o775 | os.ModeSetgid},
		{"data", 0o755},
		{"ro", 0o755}, // made read-only at the end
		{longDir, 0o755},
	}
	modes := map[string]os.FileMode{} // applied after the owners: chown clears setuid
	for _, d := range dirs {
		must(t, os.MkdirAll(filepath.Join(root, d.name), 0o755))
		modes[d.name] = d.mode
	}
	files := []struct {
		name string
		mode os.FileMode
		data []byte
	}{
		{"etc/hostname", 0o644, []byte("bricklayer\n")},
		{"etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n")},
		{"etc/shadow", 0o640, text(200)},
		{"bin/tool", 0o755, random(40 << 10)},
		{"bin/su", 0o755 | os.ModeSetuid, random(12 << 10)},
		{"bin/wall", 0o755 | os.ModeSetgid, random(8 << 10)},
		{"usr/lib/bricklayer/libbrick.so", 0o644, half(300 << 10)},
		{"usr/share/doc/README", 0o444, text(5000)},
		{"usr/share/doc/read me with spaces.txt", 0o644, text(300)},
		{"usr/share/doc/ünïcødé ☃.txt", 0o600, text(77)},
		{"home/user/.profile", 0o600, text(120)},
		{"data/empty", 0o644, nil},
		{"data/one", 0o644, []byte{'x'}},
		{"data/block", 0o644, random(4096)},
		{"data/large.bin", 0o644, half(1536 << 10)},
		{"data/text.log", 0o664, text(100 << 10)},
		{"data/linked", 0o640, text(1000)},
		{"data/triple", 0o755, random(3000)},
		{"ro/frozen", 0o444, text(50)},
		{filepath.Join(longDir, "a-file-whose-path-is-longer-than-one-hundred-bytes.txt"), 0o644, text(64)},
	}
	for _, f := range files {
		must(t, os.WriteFile(filepath.Join(root, f.name), f.data, 0o600))
		modes[f.name] = f.mode
	}
	links := [][2]string{ // name, target
		{"lib", "usr/lib"},
		{"etc/alternative", "/etc/hostname"},
		{"data/dangling", "../nowhere/at/all"},
		{"usr/share/doc/docs-dir", "."},
	}
	for _, l := range links {
		must(t, os.Symlink(l[1], filepath.Join(root, l[0])))
	}
	hardlinks := [][2]string{ // new name, existing name
		{"data/linked.hard", "data/linked"},
		{"data/triple.2", "data/triple"},
		{"usr/lib/bricklayer/triple.3", "data/triple"},
	}
	for _, h := range hardlinks {
		must(t, os.Link(filepath.Join(root, h[1]), filepath.Join(root, h[0])))
	}
	must(t, syscall.Mkfifo(filepath.Join(root, "tmp/fifo"), 0o600))
	modes["tmp/fifo"] = os.ModeNamedPipe | 0o620
	if Owned() {
		owners := []struct {
			name     string
			uid, gid int
		}{
			{"home/user", 1000, 1000},
			{"home/user/.profile", 1000, 1000},
			{"etc/shadow", 0, 42},
			{"bin/wall", 0, 5},
			{"srv/shared", 1234, 5678},
			{"data/text.log", 65534, 65534},
			{"data/triple", 7, 8},
			{"data/dangling", 1000, 100},  // a symbolic link
			{"tmp/fifo", 33, 33},          // a FIFO
			{"var/empty", 100000, 100000}, // beyond 16 bits
		}
		for _, o := range owners {
			must(t, os.Lchown(filepath.Join(root, o.name), o.uid, o.gid))
		}
	}
	for name, mode := range modes {
		if name != "ro" {
			must(t, os.Chmod(filepath.Join(root, name), mode))
		}
	}
	must(t, os.Chmod(filepath.Join(root, "ro"), 0o555))
}

// ChangeTree changes a tree made by [FillTree] the way a second layer would:
// it removes a file, one name of a hard-linked pair, a symbolic link and a
// whole directory, replaces a directory by a file and a file by a
// directory, empties and refills a directory (an opaque directory in a
// layer), rewrites a file, changes modes and, when [Owned], an owner, and
// adds new files.
func ChangeTree(t testing.TB, root string, seed uint64) {
	t.Helper()
	p := func(name string) string { return filepath.Join(root, name) }
	rng := rand.New(rand.NewPCG(seed, ^seed))
	data := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	must(t, os.Remove(p("etc/passwd")))
	must(t, os.Remove(p("data/linked.hard")))
	must(t, os.Remove(p("etc/alternative")))
	must(t, os.RemoveAll(p("usr/share/doc")))
	must(t, os.RemoveAll(p("var/empty")))
	must(t, os.WriteFile(p("var/empty"), []byte("a file where a directory was\n"), 0o644))
	must(t, os.Remove(p("data/one")))
	must(t, os.MkdirAll(p("data/one/now/a/dir"), 0o755))
	must(t, os.RemoveAll(p("home/user")))
	must(t, os.Mkdir(p("home/user"), 0o700))
	must(t, os.WriteFile(p("home/user/new"), data(2000), 0o600))
	must(t, os.WriteFile(p("bin/tool"), data(50<<10), 0o755))
	must(t, os.Chmod(p("etc/hostname"), 0o600))
	must(t, os.Chmod(p("bin/su"), 0o755))
	must(t, os.MkdirAll(p("opt/app/bin"), 0o755))
	must(t, os.WriteFile(p("opt/app/bin/app"), data(200<<10), 0o755))
	must(t, os.Symlink("../../opt/app/bin/app", p("usr/lib/app")))
	must(t, os.Link(p("opt/app/bin/app"), p("opt/app/app.hard")))
	if Owned() {
		must(t, os.Lchown(p("home/user"), 1001, 1001))
		must(t, os.Lchown(p("data/block"), 2000, 3000))
	}
}

// Entry is what [Snapshot] records of one file.
type Entry struct {
	// Type is the file type bits of the mode (0 for a regular file).
	Type fs.FileMode
	// Perm is the permission bits with setuid, setgid and sticky; 0 for
	// symbolic links, whose permissions mean nothing on Linux.
	Perm fs.FileMode
	// Size and SHA256 describe a regular file's content.
	Size   int64
	SHA256 string
	// Target is a symbolic link's target.
	Target string
	// UID and GID are the owner.
	UID, GID uint32
	// Links are the other names of a regular file with several hard links,
	// sorted.
	Links []string
}

// String prints an entry on one line for error messages.
func (e Entry) String() string {
	s := fmt.Sprintf("type=%v perm=%v owner=%d:%d", e.Type, e.Perm, e.UID, e.GID)
	switch {
	case e.Type == 0:
		s += fmt.Sprintf(" size=%d sha256=%.12s", e.Size, e.SHA256)
	case e.Type == fs.ModeSymlink:
		s += " target=" + e.Target
	}
	if len(e.Links) > 0 {
		s += fmt.Sprintf(" links=%v", e.Links)
	}
	return s
}

// Snapshot records every file under root (root itself excluded) by its
// slash-separated path relative to root.
func Snapshot(root string) (map[string]Entry, error) {
	out := map[string]Entry{}
	inodes := map[uint64][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == root {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("stat %s: no owner information", path)
		}
		e := Entry{
			Type: fi.Mode().Type(),
			Perm: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
			UID:  st.Uid,
			GID:  st.Gid,
		}
		switch {
		case fi.Mode().IsRegular():
			e.Size = fi.Size()
			sum, err := fileSHA256(path)
			if err != nil {
				return err
			}
			e.SHA256 = sum
			if st.Nlink > 1 {
				inodes[st.Ino] = append(inodes[st.Ino], rel)
			}
		case fi.Mode().Type() == fs.ModeSymlink:
			e.Perm = 0
			if e.Target, err = os.Readlink(path); err != nil {
				return err
			}
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recording tree %s: %w", root, err)
	}
	for _, names := range inodes {
		for _, n := range names {
			e := out[n]
			e.Links = slices.Sorted(slices.Values(slices.DeleteFunc(slices.Clone(names), func(s string) bool { return s == n })))
			if len(e.Links) == 0 {
				e.Links = nil
			}
			out[n] = e
		}
	}
	return out, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// CompareTrees reports with t.Errorf every difference between the trees
// want and got: missing and extra names, and for each common name its type,
// permissions, size, content, link target, owner and hard links. Owners
// are compared only when [Owned]. It returns the number of differences.
func CompareTrees(t testing.TB, want, got string) int {
	t.Helper()
	w, err := Snapshot(want)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Snapshot(got)
	if err != nil {
		t.Fatal(err)
	}
	diffs := DiffSnapshots(w, g, Owned())
	t.Logf("compared %d names in %s with %d in %s: %d differences", len(w), want, len(g), got, len(diffs))
	const max = 25
	for i, d := range diffs {
		if i == max {
			t.Errorf("… and %d more differences", len(diffs)-max)
			break
		}
		t.Errorf("%s vs %s: %s", want, got, d)
	}
	return len(diffs)
}

// DiffSnapshots lists the differences between two snapshots, sorted by name.
// Owners are compared when owners is true.
func DiffSnapshots(want, got map[string]Entry, owners bool) []string {
	var out []string
	names := slices.Sorted(func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, m := range []map[string]Entry{want, got} {
			for n := range m {
				if !seen[n] {
					seen[n] = true
					if !yield(n) {
						return
					}
				}
			}
		}
	})
	for _, n := range names {
		we, inW := want[n]
		ge, inG := got[n]
		switch {
		case !inG:
			out = append(out, fmt.Sprintf("%s: missing (want %s)", n, we))
			continue
		case !inW:
			out = append(out, fmt.Sprintf("%s: unexpected (%s)", n, ge))
			continue
		}
		if !owners {
			we.UID, we.GID, ge.UID, ge.GID = 0, 0, 0, 0
		}
		if we.String() != ge.String() || we.SHA256 != ge.SHA256 {
			out = append(out, fmt.Sprintf("%s: got %s, want %s", n, ge, we))
		}
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// DeepPath makes depth nested directories of names n bytes long under
// root, through file descriptors since the whole path is longer than
// PATH_MAX, with a 4-byte file "leaf" at the bottom. It returns the path
// relative to root.
func DeepPath(t testing.TB, root string, depth, n int) string {
	t.Helper()
	fd, err := unix.Open(root, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range depth {
		name := fmt.Sprintf("%03d", i) + strings.Repeat("d", n-3)
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, name, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = next
		names = append(names, name)
	}
	defer unix.Close(fd)
	leaf, err := unix.Openat(fd, "leaf", unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(leaf, []byte("leaf")); err != nil {
		t.Fatal(err)
	}
	unix.Close(leaf)
	rel := strings.Join(names, "/")
	if len(rel) <= unix.PathMax {
		t.Fatalf("the deep path is only %d bytes", len(rel))
	}
	return rel
}
