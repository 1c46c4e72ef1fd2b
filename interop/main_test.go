package interop

import (
	"flag"
	"os"
	"testing"

	"github.com/sirupsen/logrus"
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
