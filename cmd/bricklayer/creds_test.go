package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/bricklayer/bricklayer/internal/testutil"
)

// TestCreds pushes to, pulls from and inspects an image in a registry that
// asks for a user name and password, given with --creds: without them, or
// with a wrong password, the registry refuses. A --creds without a password
// and no terminal to ask on, or without a user name, is a usage error that
// does not repeat the password.
func TestCreds(t *testing.T) {
	c, tmp := newCLI(t)
	addr := testutil.StartRegistryWithAuth(t, "alice", "s3cret:with:colons")
	c.ok("from", "scratch", "--name", "ctr")
	src := filepath.Join(tmp, "src")
	writeFile(t, filepath.Join(src, "f"), "f\n", 0o644)
	c.ok("copy", "ctr", src, "/")

	image := "docker://" + addr + "/creds/app:1"
	creds := "alice:s3cret:with:colons"
	c.fails(1, "authentication required", "commit", "--tls-verify=false", "ctr", image)
	c.fails(1, "authentication required", "commit", "--tls-verify=false", "--creds", "alice:wrong", "ctr", image)
	id := strings.TrimSpace(c.ok("commit", "-q", "--tls-verify=false", "--creds", creds, "ctr", image))

	var info struct {
		ID string `json:"ID"`
	}
	c.jsonOut(&info, "inspect", "--json", "--tls-verify=false", "--creds", creds, image)
	if !strings.HasSuffix(info.ID, id) {
		t.Errorf("inspect %s: ID %q, want the committed %s", image, info.ID, id)
	}
	c.fails(1, "authentication required", "from", "--tls-verify=false", image)
	c.ok("from", "--tls-verify=false", "--creds", creds, "--name", "pulled", image)
	c.ok("verify", "--tls-verify=false", "--creds", creds, image)

	for _, bad := range []struct{ creds, want string }{
		{"alice", "no password"},
		{":s3cret", "no user name"},
	} {
		_, stderr, code := c.run("commit", "--creds", bad.creds, "ctr", image)
		if code != 2 || !strings.Contains(stderr, bad.want) || strings.Contains(stderr, "s3cret") {
			t.Errorf("commit --creds %q: exit %d, stderr %q; want exit 2 and %q, without the password", bad.creds, code, stderr, bad.want)
		}
	}
}
