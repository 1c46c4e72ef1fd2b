package bricklayer

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/pkg/blobinfocache/none"
	"go.podman.io/image/v5/pkg/compression"
	"go.podman.io/image/v5/types"
)

// This file holds the two halves of every commit test: fillTree writes a
// known tree into a container, and checkImage reads an image back through
// containers/image, recomputing every digest on the way, and returns what
// its layers hold so that the tree can be compared with what was written.

// entry is one file as a layer's tar stream should carry it.
type entry struct {
	Type     byte        // tar.TypeReg, TypeDir, TypeSymlink or TypeLink
	Mode     fs.FileMode // permission and setuid/setgid/sticky bits
	UID, GID int
	Size     int64         // regular files only
	Content  digest.Digest // regular files only
	Linkname string        // symlink target, or hard link's first name
}

func (e entry) String() string {
	s := fmt.Sprintf("type %q mode %v owner %d:%d", e.Type, e.Mode, e.UID, e.GID)
	switch e.Type {
	case tar.TypeReg:
		s += fmt.Sprintf(" size %d content %s", e.Size, e.Content.Encoded()[:12])
	case tar.TypeSymlink, tar.TypeLink:
		s += " -> " + e.Linkname
	}
	return s
}

// tree maps a path relative to the root ("a/b", no leading or trailing
// slash) to its entry.
type tree map[string]entry

// fillTree writes files under root: regular files of sizes around block
// boundaries and a few random ones, directories and files with unusual
// modes (setuid, sticky, 0700), symlinks (relative, absolute, dangling, to a
// directory), a hard link and a file owned by another user. The same seed
// gives the same tree. It returns what it wrote.
func fillTree(t testing.TB, root string, seed uint64) tree {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	want := tree{}
	mkdir := func(name string, mode fs.FileMode) {
		t.Helper()
		p := filepath.Join(root, name)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		want[name] = entry{Type: tar.TypeDir, Mode: mode}
	}
	write := func(name string, size int, mode fs.FileMode) {
		t.Helper()
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.UintN(256))
		}
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		want[name] = entry{Type: tar.TypeReg, Mode: mode, Size: int64(size), Content: digest.FromBytes(data)}
	}
	symlink := func(name, target string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
		want[name] = entry{Type: tar.TypeSymlink, Mode: 0o777, Linkname: target}
	}

	mkdir("dir", 0o755)
	mkdir("dir/sub", 0o750)
	mkdir("private", 0o700)
	mkdir("sticky", 0o777|fs.ModeSticky)
	mkdir("empty-dir", 0o755)
	write("empty", 0, 0o644)
	write("one", 1, 0o600)
	write("dir/block", 4096, 0o640)
	write("dir/block-plus-one", 4097, 0o644)
	write("dir/sub/tar-block", 511, 0o644)
	write("dir/sub/big", 1<<20+3, 0o755)
	write("private/secret", 100, 0o400)
	write("setuid", 10, 0o755|fs.ModeSetuid)
	write("setgid", 10, 0o755|fs.ModeSetgid)
	write("sticky/file", 7, 0o666)
	for i := range 8 {
		write(fmt.Sprintf("dir/random-%d", i), rng.IntN(70000), 0o644)
	}
	symlink("link-relative", "dir/block")
	symlink("link-absolute", "/dir/sub/big")
	symlink("link-dangling", "does/not/exist")
	symlink("link-dir", "dir/sub")

	write("hard-a", 300, 0o644)
	if err := os.Link(filepath.Join(root, "hard-a"), filepath.Join(root, "hard-b")); err != nil {
		t.Fatal(err)
	}
	want["hard-b"] = entry{Type: tar.TypeLink, Linkname: "hard-a"}

	write("owned", 5, 0o644)
	if err := os.Lchown(filepath.Join(root, "owned"), 1000, 1001); err != nil {
		t.Fatal(err)
	}
	e := want["owned"]
	e.UID, e.GID = 1000, 1001
	want["owned"] = e
	return want
}

// wantImage is what checkImage expects of an image.
type wantImage struct {
	// ManifestType is the manifest MIME type; "" skips the check.
	ManifestType string
	// LayerMediaType is every layer's media type as the source serves it
	// for copying; "" skips the check.
	LayerMediaType string
	// Layers is the number of layers; -1 skips the check.
	Layers int
}

// layer is one layer as read back.
type layer struct {
	MediaType string
	Digest    digest.Digest
	DiffID    digest.Digest
	// Entries are the layer's tar entries, whiteouts included, in order.
	Entries []string
	Tree    tree
}

// readImage is an image as read back and checked.
type readImage struct {
	Manifest       []byte
	ManifestType   string
	ManifestDigest digest.Digest
	ConfigDigest   digest.Digest
	Config         v1.Image
	Layers         []layer
	// Tree is the root filesystem the layers make, whiteouts applied.
	Tree tree
}

// checkImage reads the image ref names, checks it against want and with
// Verify, and returns it. It recomputes the config digest, every blob's
// digest and size, every diffID after decompression, and checks the config
// lists as many diffIDs as there are layers, and as many non-empty history
// entries unless it has no history at all.
func checkImage(t testing.TB, ref types.ImageReference, want wantImage) readImage {
	t.Helper()
	return checkImageWith(t, ref, nil, want)
}

// checkImageWith is checkImage reading through sys (a registry's TLS
// settings, registries.d).
func checkImageWith(t testing.TB, ref types.ImageReference, sys *types.SystemContext, want wantImage) readImage {
	t.Helper()
	ctx := context.Background()
	report, err := Verify(ctx, ref, sys)
	if err != nil {
		t.Fatalf("verifying %s: %v", ref.StringWithinTransport(), err)
	}
	for _, p := range report.Problems {
		t.Errorf("verify: %s", p)
	}
	if report.Images != 1 {
		t.Errorf("verify checked %d images, want 1", report.Images)
	}

	src, err := ref.NewImageSource(ctx, sys)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var img readImage
	img.Manifest, img.ManifestType, err = src.GetManifest(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	img.ManifestDigest = digest.FromBytes(img.Manifest)
	if report.ManifestDigest != img.ManifestDigest {
		t.Errorf("verify read manifest %s, the checker %s", report.ManifestDigest, img.ManifestDigest)
	}
	if want.ManifestType != "" && img.ManifestType != want.ManifestType {
		t.Errorf("manifest type %s, want %s", img.ManifestType, want.ManifestType)
	}
	if got := manifest.GuessMIMEType(img.Manifest); got != img.ManifestType {
		t.Errorf("manifest served as %s but reads as %s", img.ManifestType, got)
	}
	m, err := manifest.FromBlob(img.Manifest, img.ManifestType)
	if err != nil {
		t.Fatalf("parsing manifest: %v", err)
	}

	// The config.
	ci := m.ConfigInfo()
	wantConfigType := v1.MediaTypeImageConfig
	if img.ManifestType == manifest.DockerV2Schema2MediaType {
		wantConfigType = manifest.DockerV2Schema2ConfigMediaType
	}
	if ci.MediaType != wantConfigType {
		t.Errorf("config media type %s, want %s", ci.MediaType, wantConfigType)
	}
	configBytes := readBlob(t, src, ci)
	img.ConfigDigest = digest.FromBytes(configBytes)
	if img.ConfigDigest != ci.Digest {
		t.Errorf("config digest %s, manifest says %s", img.ConfigDigest, ci.Digest)
	}
	if int64(len(configBytes)) != ci.Size {
		t.Errorf("config size %d, manifest says %d", len(configBytes), ci.Size)
	}
	if err := json.Unmarshal(configBytes, &img.Config); err != nil {
		t.Fatalf("parsing config: %v", err)
	}
	if img.Config.OS != runtime.GOOS || img.Config.Architecture != runtime.GOARCH {
		t.Errorf("config platform %s/%s, want %s/%s", img.Config.OS, img.Config.Architecture, runtime.GOOS, runtime.GOARCH)
	}
	if img.Config.Created == nil || img.Config.Created.IsZero() {
		t.Errorf("config has no created time")
	}

	// The layers, as copy.Image would read them.
	infos := layerInfosForCopy(t, src, m)
	if want.Layers >= 0 && len(infos) != want.Layers {
		t.Errorf("%d layers, want %d", len(infos), want.Layers)
	}
	if len(img.Config.RootFS.DiffIDs) != len(infos) {
		t.Errorf("config has %d diffIDs for %d layers", len(img.Config.RootFS.DiffIDs), len(infos))
	}
	nonEmpty := 0
	for _, h := range img.Config.History {
		if !h.EmptyLayer {
			nonEmpty++
		}
	}
	if len(img.Config.History) > 0 && nonEmpty != len(infos) {
		t.Errorf("config has %d non-empty history entries for %d layers", nonEmpty, len(infos))
	}
	img.Tree = tree{}
	for i, info := range infos {
		if want.LayerMediaType != "" && info.MediaType != want.LayerMediaType {
			t.Errorf("layer %d media type %s, want %s", i, info.MediaType, want.LayerMediaType)
		}
		l := readLayer(t, src, info)
		if i < len(img.Config.RootFS.DiffIDs) && l.DiffID != img.Config.RootFS.DiffIDs[i] {
			t.Errorf("layer %d diffID %s, config says %s", i, l.DiffID, img.Config.RootFS.DiffIDs[i])
		}
		img.Layers = append(img.Layers, l)
		applyLayer(img.Tree, l)
	}
	return img
}

// layerInfosForCopy returns the layers of src, whose manifest is m, as
// copy.Image reads them: those src substitutes, else the manifest's.
func layerInfosForCopy(t testing.TB, src types.ImageSource, m manifest.Manifest) []types.BlobInfo {
	t.Helper()
	infos, err := src.LayerInfosForCopy(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if infos == nil {
		for _, l := range m.LayerInfos() {
			infos = append(infos, l.BlobInfo)
		}
	}
	return infos
}

// readOCIBlob reads the blob d of the OCI layout in dir and checks its
// digest.
func readOCIBlob(t testing.TB, dir string, d digest.Digest) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(data); got != d {
		t.Fatalf("blob %s has digest %s", d, got)
	}
	return data
}

// readOCIManifest returns the manifest of the only image in the OCI layout
// in dir.
func readOCIManifest(t testing.TB, dir string) v1.Manifest {
	t.Helper()
	var index v1.Index
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v, %d manifests", err, len(index.Manifests))
	}
	var m v1.Manifest
	if err := json.Unmarshal(readOCIBlob(t, dir, index.Manifests[0].Digest), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// readBlob reads a whole blob.
func readBlob(t testing.TB, src types.ImageSource, info types.BlobInfo) []byte {
	t.Helper()
	rc, _, err := src.GetBlob(context.Background(), info, none.NoCache)
	if err != nil {
		t.Fatalf("reading blob %s: %v", info.Digest, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading blob %s: %v", info.Digest, err)
	}
	return data
}

// readLayer reads a layer blob, checks its digest and size, and lists its
// tar entries.
func readLayer(t testing.TB, src types.ImageSource, info types.BlobInfo) layer {
	t.Helper()
	rc, _, err := src.GetBlob(context.Background(), info, none.NoCache)
	if err != nil {
		t.Fatalf("reading layer %s: %v", info.Digest, err)
	}
	defer rc.Close()
	blobDigester := digest.Canonical.Digester()
	counter := &verifyCounter{}
	raw := io.TeeReader(rc, io.MultiWriter(blobDigester.Hash(), counter))
	unpacked, _, err := compression.AutoDecompress(raw)
	if err != nil {
		t.Fatalf("decompressing layer %s: %v", info.Digest, err)
	}
	defer unpacked.Close()
	diffDigester := digest.Canonical.Digester()
	l := layer{MediaType: info.MediaType, Digest: info.Digest, Tree: tree{}}
	tr := tar.NewReader(io.TeeReader(unpacked, diffDigester.Hash()))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading layer %s: %v", info.Digest, err)
		}
		name := cleanName(hdr.Name)
		if name == "" {
			continue
		}
		l.Entries = append(l.Entries, name)
		e := entry{Type: hdr.Typeflag, UID: hdr.Uid, GID: hdr.Gid}
		e.Mode = hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		switch hdr.Typeflag {
		case tar.TypeReg:
			d := digest.Canonical.Digester()
			n, err := io.Copy(d.Hash(), tr)
			if err != nil {
				t.Fatalf("reading %s in layer %s: %v", name, info.Digest, err)
			}
			e.Size, e.Content = n, d.Digest()
			if n != hdr.Size {
				t.Errorf("%s in layer %s: %d bytes, header says %d", name, info.Digest, n, hdr.Size)
			}
		case tar.TypeSymlink:
			e.Linkname = hdr.Linkname
		case tar.TypeLink:
			e.Linkname, e.Mode, e.UID, e.GID = cleanName(hdr.Linkname), 0, 0, 0
		}
		l.Tree[name] = e
	}
	// Read what follows the end-of-archive marker so that the diffID
	// covers the whole stream, then the rest of the blob.
	if _, err := io.Copy(diffDigester.Hash(), unpacked); err != nil {
		t.Fatalf("reading layer %s: %v", info.Digest, err)
	}
	if _, err := io.Copy(io.Discard, raw); err != nil {
		t.Fatalf("reading layer %s: %v", info.Digest, err)
	}
	l.DiffID = diffDigester.Digest()
	if got := blobDigester.Digest(); got != info.Digest {
		t.Errorf("layer blob digest %s, manifest says %s", got, info.Digest)
	}
	if info.Size >= 0 && counter.n != info.Size {
		t.Errorf("layer %s: %d bytes, manifest says %d", info.Digest, counter.n, info.Size)
	}
	return l
}

// cleanName turns a tar entry name into a tree key.
func cleanName(name string) string {
	name = path.Clean("/" + name)
	return strings.TrimPrefix(name, "/")
}

// applyLayer applies a layer's entries to a root filesystem tree, handling
// whiteouts and opaque directories.
func applyLayer(root tree, l layer) {
	for _, name := range l.Entries {
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		switch {
		case base == ".wh..wh..opq":
			removeUnder(root, dir, false)
		case strings.HasPrefix(base, ".wh."):
			removeUnder(root, path.Join(dir, strings.TrimPrefix(base, ".wh.")), true)
		default:
			if e := l.Tree[name]; e.Type != tar.TypeDir {
				removeUnder(root, name, true)
			}
			root[name] = l.Tree[name]
		}
	}
}

// removeUnder deletes name's descendants from root, and name itself when
// self is set.
func removeUnder(root tree, name string, self bool) {
	for k := range root {
		if (self && k == name) || strings.HasPrefix(k, name+"/") || (name == "" && k != "") {
			delete(root, k)
		}
	}
}

// compareTrees reports every difference between the tree written and the
// tree read back.
func compareTrees(t testing.TB, want, got tree) {
	t.Helper()
	names := map[string]bool{}
	for k := range want {
		names[k] = true
	}
	for k := range got {
		names[k] = true
	}
	sorted := slices.Sorted(func(yield func(string) bool) {
		for k := range names {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range sorted {
		w, wok := want[k]
		g, gok := got[k]
		switch {
		case !gok:
			t.Errorf("%s: missing from the image (want %s)", k, w)
		case !wok:
			t.Errorf("%s: in the image but not written (%s)", k, g)
		case w != g:
			t.Errorf("%s: got %s, want %s", k, g, w)
		}
	}
}

// assertEmptyDir fails if dir holds anything.
func assertEmptyDir(t testing.TB, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind in %s: %s", dir, e.Name())
	}
}

// assertAbsent fails if p exists.
func assertAbsent(t testing.TB, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists after a failed commit (%v)", p, err)
	}
}
