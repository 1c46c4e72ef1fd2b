package bricklayer

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"
	"go.podman.io/storage"
	"go.podman.io/storage/pkg/reexec"
)

var debug = flag.Bool("debug", false, "log at debug level")

func TestMain(m *testing.M) {
	if reexec.Init() {
		return
	}
	flag.Parse()
	if *debug {
		logrus.SetLevel(logrus.DebugLevel)
	}
	os.Exit(m.Run())
}

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
