package bricklayer

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/bricklayer/bricklayer/internal/testutil"
	"go.podman.io/storage"
	graphdriver "go.podman.io/storage/drivers"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// newTestStore returns a vfs store under a temporary directory, shut down
// when the test ends.
func newTestStore(t testing.TB) storage.Store {
	t.Helper()
	return newTestStoreWith(t, "vfs")
}

// newTestStoreWith returns a store with the named graph driver under a
// temporary directory, shut down when the test ends. The test is skipped if
// the machine cannot run that driver there (overlay on an overlay /tmp).
func newTestStoreWith(t testing.TB, driver string) storage.Store {
	t.Helper()
	return newTestStoreAt(t, t.TempDir(), driver)
}

// newTestStoreAt is newTestStoreWith with the store under dir, and the
// driver's options.
func newTestStoreAt(t testing.TB, dir, driver string, driverOptions ...string) storage.Store {
	t.Helper()
	store, err := storage.GetStore(storage.StoreOptions{
		RunRoot:            filepath.Join(dir, "run"),
		GraphRoot:          filepath.Join(dir, "root"),
		GraphDriverName:    driver,
		GraphDriverOptions: driverOptions,
	})
	if errors.Is(err, graphdriver.ErrNotSupported) || errors.Is(err, graphdriver.ErrPrerequisites) || errors.Is(err, graphdriver.ErrIncompatibleFS) {
		t.Skipf("the %s driver cannot run under %s here: %v", driver, dir, err)
	}
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
