package layerexport

import "testing"

// TestIdentity checks that options making the same blob share an identity
// and options making another blob do not.
func TestIdentity(t *testing.T) {
	same := [][2]Options{
		{{Algorithm: Gzip}, {Algorithm: Gzip, Level: DefaultGzipLevel}},
		{{Algorithm: Zstd}, {Algorithm: Zstd, Level: 3}},
		{{Algorithm: Zstd, Level: 6}, {Algorithm: Zstd, Level: 7}},
		{{Algorithm: Gzip, Publish: true}, {Algorithm: Gzip}},
	}
	for _, p := range same {
		if a, b := p[0].Identity(), p[1].Identity(); a != b {
			t.Errorf("%+v: %q, %+v: %q, want one identity", p[0], a, p[1], b)
		}
	}
	seen := map[string]Options{}
	for _, o := range []Options{
		{Algorithm: None}, {Algorithm: Gzip}, {Algorithm: Gzip, Level: 1}, {Algorithm: Gzip, Level: 9},
		{Algorithm: Zstd}, {Algorithm: Zstd, Level: 1}, {Algorithm: Zstd, Level: 19},
	} {
		id := o.Identity()
		if prev, ok := seen[id]; ok {
			t.Errorf("%+v and %+v share identity %q", prev, o, id)
		}
		seen[id] = o
	}
}
