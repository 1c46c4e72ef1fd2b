package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// buildTags are the tags the Makefile builds with.
const buildTags = "containers_image_openpgp,exclude_graphdriver_btrfs"

var hexID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// cli runs the built binary on one store.
type cli struct {
	t   *testing.T
	bin string
	env []string
}

// buildCLI builds the binary into a temporary directory.
func buildCLI(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool to build the binary: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "bricklayer")
	cmd := exec.Command(goTool, "build", "-buildvcs=false", "-tags", buildTags, "-o", bin, ".")
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the CLI: %v\n%s", err, out)
	}
	return bin
}

// newCLI builds the binary (skipping the test in -short mode) and returns
// a cli on a store of its own, with its own HOME and an empty TMPDIR, all
// under the returned temporary directory.
func newCLI(t *testing.T) (*cli, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	tmp := t.TempDir()
	tmpDir := filepath.Join(tmp, "tmp")
	if err := os.Mkdir(tmpDir, 0o700); err != nil {
		t.Fatal(err)
	}
	env := []string{"BRICKLAYER_ROOT=" + filepath.Join(tmp, "store"), "PATH=" + os.Getenv("PATH"), "HOME=" + tmp, "TMPDIR=" + tmpDir}
	return &cli{t: t, bin: buildCLI(t), env: env}, tmp
}

// run runs the CLI and returns its stdout, stderr and exit status.
func (c *cli) run(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	default:
		c.t.Fatalf("running bricklayer %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// ok runs the CLI, fails the test unless it succeeds, and returns stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	stdout, stderr, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("bricklayer %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// fails runs the CLI and checks its exit status and its one-line error.
func (c *cli) fails(wantCode int, wantMsg string, args ...string) {
	c.t.Helper()
	stdout, stderr, code := c.run(args...)
	if code != wantCode {
		c.t.Errorf("bricklayer %s: exit %d, want %d (stderr: %s)", strings.Join(args, " "), code, wantCode, stderr)
	}
	if stdout != "" {
		c.t.Errorf("bricklayer %s: stdout %q, want nothing", strings.Join(args, " "), stdout)
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "bricklayer: ") || !strings.Contains(lines[0], wantMsg) {
		c.t.Errorf("bricklayer %s: stderr %q, want one line \"bricklayer: ...%s...\"", strings.Join(args, " "), stderr, wantMsg)
	}
}

// jsonOut runs the CLI and decodes its stdout into v.
func (c *cli) jsonOut(v any, args ...string) {
	c.t.Helper()
	out := c.ok(args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("bricklayer %s: decoding %q: %v", strings.Join(args, " "), out, err)
	}
}

// TestEndToEnd runs the built binary through from, copy, config, commit,
// images, inspect, rm and rmi on a store of its own, and checks what each
// step prints and leaves behind.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	tmp := t.TempDir()
	storeDir := filepath.Join(tmp, "store")
	tmpDir := filepath.Join(tmp, "tmp")
	if err := os.Mkdir(tmpDir, 0o700); err != nil {
		t.Fatal(err)
	}
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + tmp, "TMPDIR=" + tmpDir}
	c := &cli{t: t, bin: buildCLI(t), env: append([]string{"BRICKLAYER_ROOT=" + storeDir}, base...)}

	// The files the container gets.
	src := filepath.Join(tmp, "src")
	writeFile(t, filepath.Join(src, "hello.txt"), "hello\n", 0o644)
	writeFile(t, filepath.Join(src, "bin", "run.sh"), "#!/bin/sh\necho run\n", 0o755)

	// from
	if out := c.ok("from", "scratch", "--name", "e2e"); out != "e2e\n" {
		t.Fatalf("from: printed %q, want %q", out, "e2e\n")
	}
	var ctrs []containerSummary
	c.jsonOut(&ctrs, "containers", "--json")
	if len(ctrs) != 1 || ctrs[0].Name != "e2e" || ctrs[0].ImageID != "" {
		t.Fatalf("containers after from: %+v, want one container e2e from scratch", ctrs)
	}
	if lines := strings.Split(strings.TrimSpace(c.ok("containers")), "\n"); len(lines) != 2 || !slices.Equal(strings.Fields(lines[1])[1:], []string{"<none>", "scratch", "e2e"}) {
		t.Errorf("containers lists %q, want a container e2e with no image ID, of image scratch", lines)
	}
	c.fails(1, `"e2e"`, "from", "scratch", "--name", "e2e")

	// copy
	if _, stderr, code := c.run("copy", "e2e", src, "/app"); code != 0 {
		t.Fatalf("copy: exit %d: %s", code, stderr)
	}
	mp := strings.TrimSpace(c.ok("mount", "e2e"))
	if got := readFile(t, filepath.Join(mp, "app", "hello.txt")); got != "hello\n" {
		t.Errorf("after copy, /app/hello.txt holds %q", got)
	}
	if out := c.ok("mount"); out != "e2e "+mp+"\n" {
		t.Errorf("mount without arguments printed %q, want %q", out, "e2e "+mp+"\n")
	}
	c.ok("umount", "e2e")

	// config
	c.ok("config", "e2e", "--env", "A=1", "--env", "B=two words", "--cmd", `["/app/bin/run.sh","x"]`,
		"--label", "l1=v1", "--workingdir", "/app", "--user", "1000:1000", "--port", "8080/tcp",
		"--annotation", "an=av", "--author", "e2e test", "--volume", "/data")
	var ci containerInfo
	c.jsonOut(&ci, "inspect", "--json", "e2e")
	checkConfig(t, "inspect e2e", ci.OCIConfig)
	if ci.Type != "container" || ci.Name != "e2e" || ci.FromImage != "scratch" || ci.Annotations["an"] != "av" {
		t.Errorf("inspect e2e: %+v", ci)
	}
	c.ok("config", "e2e", "--env", "B-", "--env", "A=2")
	c.jsonOut(&ci, "inspect", "--json", "e2e")
	if !slices.Equal(ci.OCIConfig.Config.Env, []string{"A=2"}) {
		t.Errorf("after --env B- --env A=2, Env is %q", ci.OCIConfig.Config.Env)
	}
	if _, stderr, code := c.run("config", "e2e", "--change", "LABEL l2=v2"); code != 0 {
		t.Errorf("config --change: exit %d: %s", code, stderr)
	} else {
		c.jsonOut(&ci, "inspect", "--json", "e2e")
		if ci.OCIConfig.Config.Labels["l2"] != "v2" {
			t.Errorf("after --change 'LABEL l2=v2', labels are %v", ci.OCIConfig.Config.Labels)
		}
	}
	c.ok("config", "e2e", "--env", "A=1")

	// commit to an OCI layout; not a terminal, so nothing but the ID
	layoutDir := filepath.Join(tmp, "layout")
	stdout, stderr, code := c.run("commit", "--timestamp", "1700000000", "e2e", "oci:"+layoutDir+":v1")
	if code != 0 || stderr != "" {
		t.Fatalf("commit to oci: exit %d, stderr %q", code, stderr)
	}
	ociID := strings.TrimSuffix(stdout, "\n")
	if !hexID.MatchString(ociID) || stdout != ociID+"\n" {
		t.Fatalf("commit printed %q, want an image ID and a newline", stdout)
	}
	checkLayout(t, layoutDir, ociID, map[string]string{"app/hello.txt": "hello\n", "app/bin/run.sh": "#!/bin/sh\necho run\n"})
	// containers/image's blob info cache is kept beside the embedded
	// store, not in the system's (or the user's) containers directory.
	if _, err := os.Stat(filepath.Join(storeDir, "cache", "blob-info-cache-v1.sqlite")); err != nil {
		t.Errorf("the blob info cache is not beside the embedded store: %v", err)
	}

	// commit into the store, by short name
	storeID := strings.TrimSpace(c.ok("commit", "-q", "e2e", "e2eimg"))
	if !hexID.MatchString(storeID) {
		t.Fatalf("commit e2eimg printed %q", storeID)
	}
	iid := filepath.Join(tmp, "iid")
	unnamedID := strings.TrimSpace(c.ok("commit", "-q", "--iidfile", iid, "e2e"))
	if got := readFile(t, iid); got != "sha256:"+unnamedID {
		t.Errorf("iidfile holds %q, want sha256:%s", got, unnamedID)
	}
	// The benchmark's form: storage flags after the subcommand, no
	// BRICKLAYER_ROOT; the flags name the same store.
	bench := &cli{t: t, bin: c.bin, env: base}
	dockerID := strings.TrimSpace(bench.ok("commit", "--root", filepath.Join(storeDir, "storage"), "--runroot", filepath.Join(storeDir, "run"),
		"--storage-driver", "vfs", "-q", "--compression=none", "--format", "docker", "e2e", "containers-storage:localhost/e2e-docker:v2"))

	// images
	var imgs []imageSummary
	c.jsonOut(&imgs, "images", "--json")
	names := map[string][]string{}
	for _, img := range imgs {
		names[img.ID] = img.Names
	}
	if !slices.Equal(names[storeID], []string{"localhost/e2eimg:latest"}) {
		t.Errorf("images: %s has names %q, want localhost/e2eimg:latest (all: %v)", storeID, names[storeID], names)
	}
	if n, ok := names[unnamedID]; !ok || len(n) != 0 {
		t.Errorf("images: the image committed without a name, %s, has names %q (present: %v)", unnamedID, n, ok)
	}
	if !slices.Equal(names[dockerID], []string{"localhost/e2e-docker:v2"}) {
		t.Errorf("images: %s has names %q, want localhost/e2e-docker:v2", dockerID, names[dockerID])
	}
	table := c.ok("images")
	if !regexp.MustCompile(`(?m)^localhost/e2eimg\s+latest\s+` + storeID[:12] + `\s`).MatchString(table) {
		t.Errorf("images table lacks localhost/e2eimg latest %s:\n%s", storeID[:12], table)
	}

	// inspect the images
	var ii imageInfo
	c.jsonOut(&ii, "inspect", "--json", "e2eimg")
	if ii.Type != "image" || ii.ID != storeID || ii.ManifestType != v1.MediaTypeImageManifest || len(ii.Layers) != 1 || ii.OCIConfig == nil {
		t.Fatalf("inspect e2eimg: %+v", ii)
	}
	checkConfig(t, "inspect e2eimg", *ii.OCIConfig)
	c.jsonOut(&ii, "inspect", "--json", "localhost/e2e-docker:v2")
	if ii.ManifestType != "application/vnd.docker.distribution.manifest.v2+json" || ii.Layers[0].MediaType != "application/vnd.docker.image.rootfs.diff.tar" {
		t.Errorf("inspect e2e-docker: manifest type %s, layer type %s", ii.ManifestType, ii.Layers[0].MediaType)
	}
	c.jsonOut(&ii, "inspect", "--json", "oci:"+layoutDir+":v1")
	if ii.ID != ociID {
		t.Errorf("inspect oci: ID %s, want %s", ii.ID, ociID)
	}
	if out := c.ok("inspect", "oci:"+layoutDir+":v1"); !strings.Contains(out, `["/app/bin/run.sh","x"]`) || !strings.Contains(out, "2023-11-14T22:13:20Z") {
		t.Errorf("inspect oci: printed\n%s", out)
	}

	// verify every image committed so far, then a corrupted copy
	for _, ref := range []string{"oci:" + layoutDir + ":v1", "e2eimg", "localhost/e2e-docker:v2", unnamedID} {
		if out := c.ok("verify", ref); !strings.HasPrefix(out, ref+": manifest sha256:") || !strings.HasSuffix(out, " blobs read: OK\n") || strings.Count(out, "\n") != 1 {
			t.Errorf("verify %s printed %q, want one OK line", ref, out)
		}
	}
	var vr verifyReport
	c.jsonOut(&vr, "verify", "--json", "e2eimg")
	if !vr.OK || vr.Images != 1 || vr.Blobs != 2 || len(vr.Problems) != 0 {
		t.Errorf("verify --json e2eimg: %+v", vr)
	}
	badLayout := filepath.Join(tmp, "bad-layout")
	copyTree(t, layoutDir, badLayout)
	var badIndex v1.Index
	readJSON(t, filepath.Join(badLayout, "index.json"), &badIndex)
	var badManifest v1.Manifest
	readBlobJSON(t, badLayout, badIndex.Manifests[0].Digest, &badManifest)
	layerPath := filepath.Join(badLayout, "blobs", "sha256", badManifest.Layers[0].Digest.Encoded())
	layerBytes := readBlob(t, badLayout, badManifest.Layers[0].Digest)
	layerBytes[len(layerBytes)/2] ^= 0xff
	writeFile(t, layerPath, string(layerBytes), 0o644)
	stdout, stderr, code = c.run("verify", "oci:"+badLayout+":v1")
	if code != 1 || !strings.Contains(stdout, "layer 0 ("+badManifest.Layers[0].Digest.String()+"): digest: want") ||
		!regexp.MustCompile(`: [0-9]+ problems?\n`).MatchString(stdout) || !regexp.MustCompile(`[0-9]+ problems? found`).MatchString(stderr) {
		t.Errorf("verify of a corrupted layout: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	// reproducible commits: files touched between two commits a second
	// apart, the same image with SOURCE_DATE_EPOCH and --rewrite-timestamps
	rc := &cli{t: t, bin: c.bin, env: append(slices.Clone(c.env), "SOURCE_DATE_EPOCH=1600000000")}
	reproIDs := map[string]bool{}
	for i := range 2 {
		if i > 0 {
			time.Sleep(1100 * time.Millisecond)
			mp := strings.TrimSpace(c.ok("mount", "e2e"))
			later := time.Now().Add(time.Hour)
			if err := os.Chtimes(filepath.Join(mp, "app", "hello.txt"), later, later); err != nil {
				t.Fatal(err)
			}
			c.ok("umount", "e2e")
		}
		dir := filepath.Join(tmp, "repro-"+strconv.Itoa(i))
		id := strings.TrimSpace(rc.ok("commit", "-q", "--rewrite-timestamps", "--squash", "--unsetenv", "A", "--annotation", "k=v", "e2e", "oci:"+dir+":r"))
		reproIDs[id] = true
		rc.ok("verify", "oci:"+dir+":r")
		var ri imageInfo
		c.jsonOut(&ri, "inspect", "--json", "oci:"+dir+":r")
		if ri.OCIConfig == nil || !ri.OCIConfig.Created.Equal(time.Unix(1600000000, 0)) || slices.ContainsFunc(ri.OCIConfig.Config.Env, func(e string) bool { return strings.HasPrefix(e, "A=") }) {
			t.Errorf("reproducible commit: config %+v, want created 2020-09-13 and no A", ri.OCIConfig)
		}
		var rm v1.Manifest
		if err := json.Unmarshal(ri.Manifest, &rm); err != nil || rm.Annotations["k"] != "v" || len(rm.Layers) != 1 {
			t.Errorf("reproducible commit: manifest %s (%v): want one layer and the annotation k=v", ri.Manifest, err)
		}
	}
	if len(reproIDs) != 1 {
		t.Errorf("two reproducible commits printed the IDs %v, want one", reproIDs)
	}
	c.fails(2, "--rewrite-timestamps", "commit", "--rewrite-timestamps", "e2e", "oci:"+filepath.Join(tmp, "nope"))
	c.fails(2, "give one", "commit", "--squash", "--squash-new-layers", "e2e", "oci:"+filepath.Join(tmp, "nope"))
	c.fails(1, "needs gpgme", "commit", "--sign-by", "ABCDEF", "e2e", "oci:"+filepath.Join(tmp, "nope"))
	c.fails(2, "give one", "commit", "--sign-by", "ABCDEF", "--sign-by-openpgp-key", "k", "e2e", "oci:"+filepath.Join(tmp, "nope"))
	// A registry that refuses connections: tried three times, each retry
	// announced, and the error says how many tries were made.
	_, stderr, code = c.run("commit", "--retry", "2", "--retry-delay", "10ms", "e2e", "docker://127.0.0.1:1/e2e:1")
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if code != 1 || len(lines) != 3 || strings.Count(stderr, "retrying in 10ms") != 2 || !strings.HasSuffix(lines[2], "connection refused (after 3 tries)") {
		t.Errorf("commit --retry 2 to a closed port: exit %d, stderr:\n%s\nwant exit 1, two retries, then the error after 3 tries", code, stderr)
	}

	// from an image we made, then rm everything
	second := strings.TrimSpace(c.ok("from", "e2eimg"))
	c.jsonOut(&ci, "inspect", "--json", "--type", "container", second)
	if ci.FromImageID != storeID {
		t.Errorf("from e2eimg: base image %s, want %s", ci.FromImageID, storeID)
	}
	// --blob-cache: the second commit on e2eimg takes the base layer's
	// blob from the cache, and makes the same image.
	cache := filepath.Join(tmp, "blob-cache")
	cachedID := c.ok("commit", "-q", "--timestamp", "0", "--blob-cache", cache, second, "oci:"+filepath.Join(tmp, "cached-1")+":1")
	if entries, _ := filepath.Glob(filepath.Join(cache, "layers", "*.json")); len(entries) != 1 {
		t.Errorf("blob cache entries after a commit on a one-layer image: %v, want one", entries)
	}
	stdout, stderr, code = c.run("--log-level", "debug", "commit", "-q", "--timestamp", "0", "--blob-cache", cache, second, "oci:"+filepath.Join(tmp, "cached-2")+":1")
	if code != 0 || stdout != cachedID || !strings.Contains(stderr, "taken from blob cache") {
		t.Errorf("commit again with --blob-cache: exit %d, ID %q (want %q), stderr:\n%s\nwant the base layer taken from the cache", code, stdout, cachedID, stderr)
	}
	c.fails(1, "blob cache", "commit", "--blob-cache", filepath.Join(tmp, "cached-1", "index.json"), second, "oci:"+filepath.Join(tmp, "nope"))
	c.fails(1, "containers", "rmi", "e2eimg")
	c.ok("rm", "e2e", second)
	if out := c.ok("containers", "-q"); out != "" {
		t.Errorf("containers after rm: %q, want none", out)
	}
	if _, err := os.Stat(mp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the container's directory %s is still there after rm (%v)", mp, err)
	}
	c.ok("rmi", "e2eimg", unnamedID)
	ids := strings.Fields(c.ok("images", "-q"))
	if !slices.Equal(ids, []string{dockerID}) {
		t.Errorf("images after rmi: %q, want only %s", ids, dockerID)
	}

	// errors
	c.fails(1, `"nosuch"`, "inspect", "nosuch")
	c.fails(1, `"nosuch"`, "commit", "nosuch", "oci:"+filepath.Join(tmp, "nope"))
	c.fails(2, "arg", "commit")
	c.fails(2, "lz4", "commit", "--compression", "lz4", "x")
	c.fails(2, "--compression-level 10", "commit", "--compression-level", "10", "x")
	c.fails(2, `"0x" for "--compression-level"`, "commit", "--compression-level", "0x", "x")
	c.fails(2, "KEY=VALUE", "config", "x", "--env", "NOEQUALS")
	c.fails(2, "unknown command", "frob")

	// nothing left in TMPDIR
	if left, _ := os.ReadDir(tmpDir); len(left) != 0 {
		t.Errorf("files left in TMPDIR: %v", left)
	}
}

// checkConfig checks what the config step set.
func checkConfig(t *testing.T, what string, oc v1.Image) {
	t.Helper()
	c := oc.Config
	if !slices.Equal(c.Env, []string{"A=1", "B=two words"}) && !slices.Equal(c.Env, []string{"A=1"}) {
		t.Errorf("%s: Env %q", what, c.Env)
	}
	if !slices.Equal(c.Cmd, []string{"/app/bin/run.sh", "x"}) || c.Entrypoint != nil {
		t.Errorf("%s: Cmd %q Entrypoint %q", what, c.Cmd, c.Entrypoint)
	}
	if c.Labels["l1"] != "v1" || c.WorkingDir != "/app" || c.User != "1000:1000" || oc.Author != "e2e test" {
		t.Errorf("%s: Labels %v WorkingDir %q User %q Author %q", what, c.Labels, c.WorkingDir, c.User, oc.Author)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("%s: ExposedPorts %v", what, c.ExposedPorts)
	}
	if _, ok := c.Volumes["/data"]; !ok || len(c.Volumes) != 1 {
		t.Errorf("%s: Volumes %v", what, c.Volumes)
	}
}

// checkLayout reads the image tagged v1 in an OCI layout, verifies every
// digest against the bytes, and checks the config's created time and the
// files in its single layer.
func checkLayout(t *testing.T, dir, wantID string, wantFiles map[string]string) {
	t.Helper()
	var index v1.Index
	readJSON(t, filepath.Join(dir, "index.json"), &index)
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations[v1.AnnotationRefName] != "v1" {
		t.Fatalf("index.json: %+v", index)
	}
	var m v1.Manifest
	readBlobJSON(t, dir, index.Manifests[0].Digest, &m)
	if m.Config.Digest.Encoded() != wantID {
		t.Errorf("config digest %s, but commit printed %s", m.Config.Digest, wantID)
	}
	var config v1.Image
	readBlobJSON(t, dir, m.Config.Digest, &config)
	if config.Created == nil || !config.Created.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("config created %v, want --timestamp 1700000000", config.Created)
	}
	checkConfig(t, "oci layout config", config)
	if len(m.Layers) != 1 || len(config.RootFS.DiffIDs) != 1 || m.Layers[0].MediaType != v1.MediaTypeImageLayerGzip {
		t.Fatalf("manifest layers %+v, diffIDs %v: want one gzip layer", m.Layers, config.RootFS.DiffIDs)
	}
	blob := readBlob(t, dir, m.Layers[0].Digest)
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatalf("layer %s: %v", m.Layers[0].Digest, err)
	}
	tarBytes, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("layer %s: %v", m.Layers[0].Digest, err)
	}
	if got := digest.FromBytes(tarBytes); got != config.RootFS.DiffIDs[0] {
		t.Errorf("layer diffID %s, config says %s", got, config.RootFS.DiffIDs[0])
	}
	got := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(tarBytes))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading layer tar: %v", err)
		}
		if h.Typeflag == tar.TypeReg {
			data, _ := io.ReadAll(tr)
			got[strings.TrimPrefix(h.Name, "./")] = string(data)
		}
	}
	for name, want := range wantFiles {
		if got[name] != want {
			t.Errorf("layer file %s holds %q, want %q (files: %v)", name, got[name], want, got)
		}
	}
}

func readBlob(t *testing.T, dir string, d digest.Digest) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded()))
	if err != nil {
		t.Fatalf("blob %s: %v", d, err)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != d.Encoded() {
		t.Fatalf("blob %s: its bytes digest to %x", d, sum)
	}
	return data
}

func readBlobJSON(t *testing.T, dir string, d digest.Digest, v any) {
	t.Helper()
	if err := json.Unmarshal(readBlob(t, dir, d), v); err != nil {
		t.Fatalf("blob %s: %v", d, err)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(readFile(t, path)), v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies the regular files and directories under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, info.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copying %s to %s: %v", src, dst, err)
	}
}
