package bricklayer

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/types"
)

// testRegistry is a docker-registry (distribution) serving plain HTTP on a
// loopback port, with its storage in a temporary directory.
type testRegistry struct {
	host string // "127.0.0.1:PORT"
	root string // the storage directory
	log  string // its log file: requests and messages
}

// startRegistry starts a registry for the test and stops it when the test
// ends; the test is skipped when docker-registry is not installed.
func startRegistry(t *testing.T) *testRegistry {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a registry")
	}
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		if bin, err = exec.LookPath("registry"); err != nil {
			t.Skip("docker-registry is not installed")
		}
	}
	dir := t.TempDir()
	r := &testRegistry{root: filepath.Join(dir, "data"), log: filepath.Join(dir, "log")}
	config := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: 127.0.0.1:0
  secret: bricklayer-test
`, r.root)
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(r.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", configPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logFile.Close()
	})
	listening := regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		data, _ := os.ReadFile(r.log)
		if m := listening.FindSubmatch(data); m != nil {
			r.host = string(m[1])
			return r
		}
	}
	data, _ := os.ReadFile(r.log)
	t.Fatalf("the registry did not say where it listens:\n%s", data)
	return nil
}

// sys is a SystemContext for the registry: plain HTTP, and a blob info
// cache of the test's own.
func (r *testRegistry) sys(t *testing.T, base *types.SystemContext) *types.SystemContext {
	t.Helper()
	sys := types.SystemContext{}
	if base != nil {
		sys = *base
	}
	sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
	return &sys
}

// ref is a docker:// reference to name (REPO:TAG) in the registry.
func (r *testRegistry) ref(t *testing.T, name string) types.ImageReference {
	t.Helper()
	named, err := reference.ParseNormalizedNamed(r.host + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := docker.NewReference(named)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// blobs counts the blobs the registry stores, whatever repositories link
// them.
func (r *testRegistry) blobs(t *testing.T) int {
	t.Helper()
	n := 0
	dir := filepath.Join(r.root, "docker", "registry", "v2", "blobs")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == "data" {
			n++
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return n
}

// requests returns the request lines ("PUT /v2/...") the registry logged
// since it started.
func (r *testRegistry) requests(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(r.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	// The access log is in the combined format: ... "METHOD URI HTTP/1.1" ...
	line := regexp.MustCompile(`"((?:GET|HEAD|PUT|POST|PATCH|DELETE) [^ "]+) HTTP/1\.1"`)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := line.FindStringSubmatch(sc.Text()); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// blobUploads lists the blob uploads completed into repo among requests:
// the digests of the PUTs that end them.
func blobUploads(requests []string, repo string) []string {
	var out []string
	digestParam := regexp.MustCompile(`[?&]digest=([^&]+)`)
	for _, r := range requests {
		if !strings.HasPrefix(r, "PUT /v2/"+repo+"/blobs/uploads/") {
			continue
		}
		if m := digestParam.FindStringSubmatch(r); m != nil {
			out = append(out, strings.ReplaceAll(m[1], "%3A", ":"))
		} else {
			out = append(out, r)
		}
	}
	return out
}

// withSignatureStorage returns sys configured, through a registries.d
// directory of the test's own, to keep the registry's signatures: sigstore
// signatures as OCI attachments in the registry, simple signatures in a
// lookaside directory (returned).
func (r *testRegistry) withSignatureStorage(t *testing.T, sys *types.SystemContext) (*types.SystemContext, string) {
	t.Helper()
	dir := t.TempDir()
	lookaside := filepath.Join(dir, "lookaside")
	config := fmt.Sprintf(`default-docker:
  lookaside: file://%[2]s/default
docker:
  %[1]s:
    lookaside: file://%[2]s
    use-sigstore-attachments: true
`, r.host, lookaside)
	if err := os.MkdirAll(filepath.Join(dir, "registries.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "registries.d", "test.yaml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	out := *sys
	out.RegistriesDirPath = filepath.Join(dir, "registries.d")
	return &out, lookaside
}
