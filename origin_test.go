package bricklayer

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.podman.io/image/v5/types"
)

// TestOriginGetsNoDestinationCredentials builds on a base pulled from one
// registry and pushes to another with credentials: the base's registry, a
// listener that asks every request for basic auth and notes what it is
// given, must never see the destination's credentials (nor the
// destination's TLS waiver). The base layers then come from the store.
func TestOriginGetsNoDestinationCredentials(t *testing.T) {
	env := newTestEnv(t)
	reg := startRegistry(t, env.dir(t, "registry"))
	sys := reg.sys(t, env.sys)

	a, _ := env.newFilledBuilder(t, "base", 51)
	if _, err := a.Commit(env.ctx, reg.ref(t, "o/base:1"), CommitOptions{SystemContext: sys}); err != nil {
		t.Fatal(err)
	}
	b, err := NewBuilder(env.ctx, env.store, BuilderOptions{FromImage: "docker://" + reg.addr + "/o/base:1", SystemContext: sys, Container: "derived"})
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var seen []string
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("WWW-Authenticate", `Basic realm="origin"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer origin.Close()
	// The base was pulled from the listener, as far as the builder knows.
	b.mu.Lock()
	b.state.FromImageOrigin = "docker://" + strings.TrimPrefix(origin.URL, "http://") + "/o/base:1"
	b.mu.Unlock()

	withCreds := *sys
	withCreds.DockerAuthConfig = &types.DockerAuthConfig{Username: "dest-user", Password: "dest-secret"}
	dest := reg.ref(t, "o/derived:1")
	if _, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: &withCreds}); err != nil {
		t.Fatal(err)
	}
	checkImageWith(t, dest, sys, wantImage{Layers: 2})
	mu.Lock()
	defer mu.Unlock()
	for _, auth := range seen {
		if auth != "" {
			t.Errorf("the base image's registry was sent %q", auth)
		}
	}
}
