package bricklayer

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseCompression: every input either parses to a compression whose
// name parses back to it, or fails with ErrUnsupportedCompression quoting
// the input.
func FuzzParseCompression(f *testing.F) {
	for _, s := range []string{"gzip", "GZIP", "none", "uncompressed", "zstd", "", "bzip2", "zstd:chunked", "gzip\x00", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCompression(s)
		if err != nil {
			if !errors.Is(err, ErrUnsupportedCompression) || !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Fatalf("ParseCompression(%q): %v, want ErrUnsupportedCompression quoting the input", s, err)
			}
			return
		}
		again, err := ParseCompression(c.String())
		if err != nil || again != c {
			t.Fatalf("ParseCompression(%q) = %s, which parses back as %s, %v", s, c, again, err)
		}
	})
}
