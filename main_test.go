package bricklayer

import (
	"path/filepath"
	"testing"

	"github.com/bricklayer/bricklayer/internal/testutil"
	"go.podman.io/storage"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// newTestStore returns a vfs store under a temporary directory, shut down
// when the test ends.
func newTestStore(t testing.TB) storage.Store {
	t.Helper()
	dir := t.TempDir()
	store, err := storage.GetStore(storage.StoreOptions{
		RunRoot:         filepath.Join(dir, "run"),
		GraphRoot:       filepath.Join(dir, "root"),
		GraphDriverName: "vfs",
	})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() {
		if _, err := store.Shutdown(true); err != nil {
			t.Logf("shutting down store: %v", err)
		}
	})
	return store
}
