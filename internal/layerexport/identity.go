package layerexport

import (
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Identity names everything that decides the bytes of a blob exported with
// opts from a given tar stream: the algorithm, its level, the fixed
// parameters above and the versions of the compressor modules. Two exports
// with the same identity make the same blob, so a blob kept under it may
// stand in for exporting the layer again.
func (o Options) Identity() string {
	level := o.Level
	switch o.Algorithm {
	case None:
		return "none"
	case Gzip:
		if level == 0 {
			level = DefaultGzipLevel
		}
		return fmt.Sprintf("gzip level %d, blocks %d x %d, %s", level, gzipBlocks, gzipBlockSize, compressorModules())
	case Zstd:
		// zstd's levels map onto fewer encoder levels, which decide the bytes.
		enc := zstd.SpeedDefault
		if level != 0 {
			enc = zstd.EncoderLevelFromZstd(level)
		}
		return fmt.Sprintf("zstd %s, window %d, %s", enc, zstdWindowSize, compressorModules())
	}
	return o.Algorithm.String()
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
