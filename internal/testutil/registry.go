package testutil

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// registryConfig is docker-registry's configuration: the kernel chooses
// the port, blobs live under the test's temporary directory, and nothing is
// shared with other registries (no redis, no proxy, no auth).
const registryConfig = `version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:0
  secret: bricklayer-test-secret
`

// listeningRE finds the address in docker-registry's "listening on" line.
var listeningRE = regexp.MustCompile(`listening on (127\.0\.0\.1:[0-9]+)`)

// StartRegistry starts Debian's docker-registry (the distribution project's
// registry) on 127.0.0.1 with a port the kernel chooses and filesystem
// storage in a temporary directory, and returns its "127.0.0.1:PORT". It
// speaks plain HTTP. The registry is stopped by its PID when the test ends.
// The test is skipped when docker-registry is not installed.
func StartRegistry(t testing.TB) string {
	t.Helper()
	return startRegistry(t, "")
}

// StartRegistryWithAuth starts a registry as StartRegistry does that
// accepts only user with password (HTTP basic authentication, from an
// htpasswd file).
func StartRegistryWithAuth(t testing.TB, user, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, fmt.Appendf(nil, "%s:%s\n", user, hash), 0o600); err != nil {
		t.Fatal(err)
	}
	return startRegistry(t, fmt.Sprintf("auth:\n  htpasswd:\n    realm: bricklayer-test\n    path: %s\n", htpasswd))
}

// startRegistry starts docker-registry with registryConfig and extra, more
// top-level sections of its configuration.
func startRegistry(t testing.TB, extra string) string {
	t.Helper()
	bin := RequireTool(t, "docker-registry")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, registryConfig+extra, filepath.Join(dir, "data")), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	for _, kv := range os.Environ() { // REGISTRY_* variables override the file
		if !strings.HasPrefix(kv, "REGISTRY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() {
		exited <- cmd.Wait()
		pw.Close()
	}()

	var logMu sync.Mutex
	var logBuf strings.Builder
	addrCh := make(chan string, 1)
	go func() { // keeps draining the log so the registry never blocks on it
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			logMu.Lock()
			if logBuf.Len() < 256<<10 {
				logBuf.WriteString(line + "\n")
			}
			logMu.Unlock()
			if m := listeningRE.FindStringSubmatch(line); m != nil && !sent {
				addrCh <- m[1]
				sent = true
			}
		}
		io.Copy(io.Discard, pr) //nolint:errcheck // draining only
	}()
	log := func() string {
		logMu.Lock()
		defer logMu.Unlock()
		return logBuf.String()
	}
	stop := func() {
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && err != syscall.ESRCH {
			t.Logf("stopping docker-registry (pid %d): %v", pid, err)
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
				t.Logf("killing docker-registry (pid %d): %v", pid, err)
			}
			<-exited
		}
	}

	select {
	case addr := <-addrCh:
		t.Cleanup(func() {
			stop()
			if t.Failed() {
				lines := strings.Split(strings.TrimSpace(log()), "\n")
				if len(lines) > 30 {
					lines = lines[len(lines)-30:]
				}
				t.Logf("docker-registry log, last %d lines:\n%s", len(lines), strings.Join(lines, "\n"))
			}
		})
		t.Logf("docker-registry (pid %d) listening on %s", pid, addr)
		return addr
	case err := <-exited:
		t.Fatalf("docker-registry exited before listening: %v\n%s", err, log())
	case <-time.After(30 * time.Second):
		stop()
		t.Fatalf("docker-registry did not say where it listens within 30s:\n%s", log())
	}
	return ""
}
