package layerexport

import (
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// identityFormat is part of every identity. Change it when this package
// changes the bytes it writes for a reason Identity does not name (a gzip
// header field, a zstd frame option), so that blobs kept under the old
// identities are no longer taken for the new ones.
const identityFormat = "layerexport 1"

// Identity names everything that decides the bytes of a blob exported with
// opts from a given tar stream: the algorithm, its level, the fixed
// parameters above and the versions of the compressor modules. Two exports
// with the same identity make the same blob, so a blob kept under it may
// stand in for exporting the layer again.
func (o Options) Identity() string {
	level := o.Level
	switch o.Algorithm {
	case None:
		return identityFormat + ", none"
	case Gzip:
		if level == 0 {
			level = DefaultGzipLevel
		}
		return fmt.Sprintf("%s, gzip level %d, blocks %d x %d, %s", identityFormat, level, gzipBlocks, gzipBlockSize, compressorModules())
	case Zstd:
		// zstd's levels map onto fewer encoder levels, which decide the bytes.
		enc := zstd.SpeedDefault
		if level != 0 {
			enc = zstd.EncoderLevelFromZstd(level)
		}
		return fmt.Sprintf("%s, zstd %s, window %d, %s", identityFormat, enc, zstdWindowSize, compressorModules())
	}
	return identityFormat + ", " + o.Algorithm.String()
}

// compressorModules lists the versions of the modules that compress, as
// this binary was built with them.
var compressorModules = sync.OnceValue(func() string {
	versions := map[string]string{"github.com/klauspost/compress": "unknown", "github.com/klauspost/pgzip": "unknown"}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, m := range info.Deps {
			if _, want := versions[m.Path]; want {
				if m.Replace != nil {
					m = m.Replace
				}
				versions[m.Path] = m.Version + m.Sum
			}
		}
	}
	return fmt.Sprintf("compress %s, pgzip %s", versions["github.com/klauspost/compress"], versions["github.com/klauspost/pgzip"])
})
