package bricklayer

import (
	"bufio"
	"fmt"
	"io/fs"
	"net"
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

// testRegistry is a docker-registry process serving plain HTTP on the
// loopback interface, its storage in a directory that outlives restarts.
type testRegistry struct {
	t       testing.TB
	dir     string // storage root
	config  string
	addr    string // 127.0.0.1:PORT
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
}

// startRegistry starts docker-registry on a free port, or skips the test
// when it is not installed. It is killed when the test ends.
func startRegistry(t testing.TB, dir string) *testRegistry {
	t.Helper()
	if _, err := exec.LookPath("docker-registry"); err != nil {
		t.Skip("docker-registry is not installed (apt-get install docker-registry)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &testRegistry{t: t, dir: filepath.Join(dir, "storage"), config: filepath.Join(dir, "config.yml"), logPath: filepath.Join(dir, "registry.log")}
	r.start("127.0.0.1:0")
	t.Cleanup(r.kill)
	return r
}

// start runs the registry on addr and waits until it listens.
func (r *testRegistry) start(addr string) {
	r.t.Helper()
	config := fmt.Sprintf("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n  secret: bricklayer-test\n", r.dir, addr)
	if err := os.WriteFile(r.config, []byte(config), 0o644); err != nil {
		r.t.Fatal(err)
	}
	logFile, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		r.t.Fatal(err)
	}
	defer logFile.Close()
	r.cmd = exec.Command("docker-registry", "serve", r.config)
	r.cmd.Stdout, r.cmd.Stderr = logFile, logFile
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("starting docker-registry: %v", err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(r.cmd, r.done)
	listening := regexp.MustCompile(`listening on (127\.0\.0\.1:[0-9]+)`)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(r.logPath)
		if m := listening.FindSubmatch(data); m != nil {
			r.addr = string(m[1])
			// The log line comes just before the accept loop: wait for it.
			for time.Now().Before(deadline) {
				if c, err := net.Dial("tcp", r.addr); err == nil {
					c.Close()
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		select {
		case <-r.done:
			r.t.Fatalf("docker-registry exited: %s", data)
		case <-time.After(10 * time.Millisecond):
		}
	}
	data, _ := os.ReadFile(r.logPath)
	r.t.Fatalf("docker-registry did not listen within 10s: %s", data)
}

// kill stops the registry at once, as a crash would.
func (r *testRegistry) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// restart starts the registry again on the same port and storage.
func (r *testRegistry) restart() {
	r.t.Helper()
	r.kill()
	r.start(r.addr)
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
	return dockerRef(t, r.addr, name)
}

// dockerRef is a docker:// reference to name (REPO:TAG) at addr.
func dockerRef(t *testing.T, addr, name string) types.ImageReference {
	t.Helper()
	named, err := reference.ParseNormalizedNamed(addr + "/" + name)
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
	dir := filepath.Join(r.dir, "docker", "registry", "v2", "blobs")
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
	f, err := os.Open(r.logPath)
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
`, r.addr, lookaside)
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
