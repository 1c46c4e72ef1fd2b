package bricklayer

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/signature"
	is "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/transports"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
)

// TestWhiteoutsAfterDeletion builds a base image, removes and replaces
// files in a builder made from it, commits that to an OCI layout, or into
// the store and from there by copy.Image to a layout, and checks that the
// top layer marks each deletion, and that base + top layer unpacked by an
// independent applier give exactly the container's tree. It does so with
// the vfs driver, which diffs a layer by comparing trees, and with overlay,
// whose layers hold only their changes and mark deletions with devices.
func TestWhiteoutsAfterDeletion(t *testing.T) {
	for _, driver := range []string{"vfs", "overlay"} {
		for _, intoStore := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/store=%v", driver, intoStore), func(t *testing.T) {
				testWhiteoutsAfterDeletion(t, driver, intoStore)
			})
		}
	}
}

func testWhiteoutsAfterDeletion(t *testing.T, driver string, intoStore bool) {
	ctx := context.Background()
	store := newTestStoreWith(t, driver)
	base, err := NewBuilder(ctx, store, BuilderOptions{FromImage: Scratch, Container: "base"})
	if err != nil {
		t.Fatal(err)
	}
	bmp := builderRoot(t, base)
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	writeTree(t, bmp, old, map[string]string{
		"keep": "keep", "gone": "gone", "over": "aaaa",
		"dir/a": "a", "dir/b": "b",
		"rep/old1": "1", "rep/old2": "2", "rep/sub/x": "x",
		"f2d": "file becoming a directory", "d2f/child": "directory becoming a file",
		"deep/er/est/file": "deep",
	})
	if err := os.Symlink("keep", filepath.Join(bmp, "lnk")); err != nil {
		t.Fatal(err)
	}
	baseRef, err := is.Transport.ParseStoreReference(store, "localhost/base:latest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := base.Commit(ctx, baseRef, CommitOptions{}); err != nil {
		t.Fatal(err)
	}
	checkImage(t, baseRef, wantImage{Layers: 1})

	b, err := NewBuilder(ctx, store, BuilderOptions{FromImage: "localhost/base:latest", Container: "derived"})
	if err != nil {
		t.Fatal(err)
	}
	mp := builderRoot(t, b)
	if got := mustRead(t, filepath.Join(mp, "dir/a")); got != "a" {
		t.Fatalf("the derived container does not hold the base image's files: %q", got)
	}
	for _, p := range []string{"gone", "dir/a", "rep", "f2d", "d2f", "lnk", "deep/er"} {
		if err := os.RemoveAll(filepath.Join(mp, p)); err != nil {
			t.Fatal(err)
		}
	}
	writeTree(t, mp, time.Time{}, map[string]string{
		"rep/new": "new", "f2d/inner": "inner", "d2f": "now a file",
	})
	src := writeHostFiles(t, map[string]string{"over": "bbbb", "added": "added"})
	if err := b.Copy(ctx, "/", AddOptions{}, filepath.Join(src, "over")); err != nil {
		t.Fatal(err)
	}
	if err := b.Copy(ctx, "/dir/", AddOptions{}, filepath.Join(src, "added")); err != nil {
		t.Fatal(err)
	}

	layoutDir := filepath.Join(t.TempDir(), "oci")
	dest, err := layout.ParseReference(layoutDir + ":derived")
	if err != nil {
		t.Fatal(err)
	}
	if intoStore {
		stored := storeRef(t, store, "localhost/derived:latest")
		if _, err := b.Commit(ctx, stored, CommitOptions{}); err != nil {
			t.Fatal(err)
		}
		checkImage(t, stored, wantImage{Layers: 2})
		copyImage(t, ctx, dest, stored, nil)
	} else if _, err := b.Commit(ctx, dest, CommitOptions{}); err != nil {
		t.Fatal(err)
	}
	checkImage(t, dest, wantImage{Layers: 2})
	layers := readOCILayers(t, layoutDir)
	if len(layers) != 2 {
		t.Fatalf("image has %d layers, want base + 1", len(layers))
	}
	names := tarNames(t, layers[1])
	t.Logf("top layer: %v", names)
	for _, want := range []string{".wh.gone", "dir/.wh.a", ".wh.lnk", "deep/.wh.er", "rep/new", "f2d/inner", "d2f", "over", "dir/added"} {
		if !slices.Contains(names, want) {
			t.Errorf("top layer lacks %s", want)
		}
	}
	opaque := slices.Contains(names, "rep/.wh..wh..opq")
	individual := slices.Contains(names, "rep/.wh.old1") && slices.Contains(names, "rep/.wh.old2") && slices.Contains(names, "rep/.wh.sub")
	if !opaque && !individual {
		t.Error("the replaced directory rep is neither opaque nor are its old entries whited out")
	}
	for _, unwanted := range []string{"keep", "dir/b", ".wh.keep"} {
		if slices.Contains(names, unwanted) {
			t.Errorf("top layer holds %s, which did not change", unwanted)
		}
	}

	unpacked := t.TempDir()
	for i, l := range layers {
		if err := applyTestLayer(unpacked, l); err != nil {
			t.Fatalf("applying layer %d: %v", i, err)
		}
	}
	want, got := describeTree(t, mp), describeTree(t, unpacked)
	for p, d := range want {
		if got[p] != d {
			t.Errorf("%s: unpacked image has %q, container has %q", p, got[p], d)
		}
	}
	for p, d := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unpacked image has %q, container has nothing", p, d)
		}
	}
}

// copyImage copies src to dest with copy.Image, accepting any signature.
func copyImage(t *testing.T, ctx context.Context, dest, src types.ImageReference, sys *types.SystemContext) {
	t.Helper()
	pc, err := signature.NewPolicyContext(&signature.Policy{Default: signature.PolicyRequirements{signature.NewPRInsecureAcceptAnything()}})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Destroy()
	if _, err := copy.Image(ctx, pc, dest, src, &copy.Options{SourceCtx: sys, DestinationCtx: sys}); err != nil {
		t.Fatalf("copying %s to %s: %v", transports.ImageName(src), transports.ImageName(dest), err)
	}
}

// deriveFrom commits base into store as localhost/base:latest, and
// returns a builder named derived made from that image, and its root.
func deriveFrom(t *testing.T, store storage.Store, base *Builder) (*Builder, string) {
	t.Helper()
	ctx := t.Context()
	if _, err := base.Commit(ctx, storeRef(t, store, "localhost/base:latest"), CommitOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := NewBuilder(ctx, store, BuilderOptions{FromImage: "localhost/base:latest", Container: "derived"})
	if err != nil {
		t.Fatal(err)
	}
	return b, builderRoot(t, b)
}

// writeTree writes files (slash-separated relative path -> content) under
// root, and sets their times and those of their directories to mtime unless
// it is zero.
func writeTree(t *testing.T, root string, mtime time.Time, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if mtime.IsZero() {
		return
	}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeSymlink == 0 {
			os.Chtimes(p, mtime, mtime)
		}
		return nil
	})
}

// readOCILayers returns the uncompressed layers of the only image in an OCI
// layout, bottom first, after checking each blob's digest.
func readOCILayers(t *testing.T, dir string) [][]byte {
	t.Helper()
	m := readOCIManifest(t, dir)
	var out [][]byte
	for _, l := range m.Layers {
		raw := readOCIBlob(t, dir, l.Digest)
		var r io.Reader = bytes.NewReader(raw)
		switch {
		case strings.HasSuffix(l.MediaType, "+gzip"):
			zr, err := gzip.NewReader(r)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		case strings.HasSuffix(l.MediaType, "+zstd"):
			zr, err := zstd.NewReader(r)
			if err != nil {
				t.Fatal(err)
			}
			defer zr.Close()
			r = zr
		}
		tarData, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("decompressing layer %s: %v", l.Digest, err)
		}
		out = append(out, tarData)
	}
	return out
}

func tarNames(t *testing.T, layer []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, strings.TrimSuffix(path.Clean(hdr.Name), "/"))
	}
}

// applyTestLayer applies an uncompressed layer to root as the OCI image
// spec says: whiteouts and opaque markers remove what the layers below put
// there, then the layer's entries are written, replacing what they meet
// unless both are directories. It trusts the layer's names; test use only.
func applyTestLayer(root string, layer []byte) error {
	type entry struct {
		hdr  *tar.Header
		body []byte
	}
	var entries []entry
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		entries = append(entries, entry{hdr, body})
	}
	at := func(name string) string { return filepath.Join(root, path.Clean("/"+name)) }
	// Deletions apply to the layers below only, so they go first.
	for _, e := range entries {
		dir, base := path.Split(path.Clean("/" + e.hdr.Name))
		switch {
		case base == ".wh..wh..opq":
			// Nothing is hidden below an opaque directory that was
			// something else there (or nothing).
			ents, err := os.ReadDir(at(dir))
			if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				return err
			}
			for _, de := range ents {
				if err := os.RemoveAll(filepath.Join(at(dir), de.Name())); err != nil {
					return err
				}
			}
		case strings.HasPrefix(base, ".wh."):
			if err := os.RemoveAll(at(dir + strings.TrimPrefix(base, ".wh."))); err != nil {
				return err
			}
		}
	}
	var dirs []*tar.Header
	for _, e := range entries {
		hdr := e.hdr
		if strings.HasPrefix(path.Base(path.Clean("/"+hdr.Name)), ".wh.") {
			continue
		}
		p := at(hdr.Name)
		if p == root {
			continue
		}
		if fi, err := os.Lstat(p); err == nil && !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		var err error
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err = os.Mkdir(p, 0o755); errors.Is(err, fs.ErrExist) {
				err = nil
			}
			dirs = append(dirs, hdr)
		case tar.TypeReg:
			err = os.WriteFile(p, e.body, 0o600)
		case tar.TypeSymlink:
			err = os.Symlink(hdr.Linkname, p)
		case tar.TypeLink:
			err = os.Link(at(hdr.Linkname), p)
		default:
			err = fmt.Errorf("entry %s: type %q not handled by the test applier", hdr.Name, hdr.Typeflag)
		}
		if err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeLink {
			continue
		}
		if err := os.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeSymlink {
			if err := os.Chmod(p, fs.FileMode(hdr.Mode).Perm()|tarSpecialBits(hdr.Mode)); err != nil {
				return err
			}
		}
	}
	return nil
}

func tarSpecialBits(mode int64) fs.FileMode {
	var m fs.FileMode
	if mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// describeTree maps each path under root (not root itself) to its type,
// mode, owner and content or link target.
func describeTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += " " + string(data)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
