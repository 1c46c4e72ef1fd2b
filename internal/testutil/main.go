package testutil

import (
	"flag"
	"os"
	"testing"

	"github.com/sirupsen/logrus"
	"go.podman.io/storage/pkg/reexec"
)

var debug = flag.Bool("debug", false, "log at debug level")

// Main is the TestMain of a package whose tests use a store: a test binary
// started as one of storage's re-exec'd helpers runs the helper instead of
// the tests, and -debug logs at debug level.
func Main(m *testing.M) {
	if reexec.Init() {
		return
	}
	flag.Parse()
	if *debug {
		logrus.SetLevel(logrus.DebugLevel)
	}
	os.Exit(m.Run())
}
