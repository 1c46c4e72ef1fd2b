package interop

import (
	"testing"

	"github.com/bricklayer/bricklayer/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }
