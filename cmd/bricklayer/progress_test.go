package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/bricklayer/bricklayer"
	digest "github.com/opencontainers/go-digest"
)

// drawing splits what one redraw wrote into the cursor movement before it
// and the words of each line.
func drawing(t *testing.T, s string) (up string, lines [][]string) {
	t.Helper()
	if i := strings.Index(s, "\r"); i >= 0 {
		up, s = s[:i], s[i:]
	}
	for _, l := range strings.SplitAfter(s, "\n") {
		if l == "" {
			continue
		}
		if !strings.HasPrefix(l, "\r\x1b[K") || !strings.HasSuffix(l, "\n") {
			t.Fatalf("line %q does not clear and rewrite a whole line", l)
		}
		lines = append(lines, strings.Fields(l[len("\r\x1b[K"):]))
	}
	return up, lines
}

func TestExportProgress(t *testing.T) {
	var out bytes.Buffer
	p := newExportProgress(&out)
	clock := time.Unix(1000, 0)
	p.now = func() time.Time { return clock }
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)

	p.update(bricklayer.LayerProgress{LayerID: a, Read: 1 << 20})
	clock = clock.Add(10 * time.Millisecond) // too soon: not redrawn
	p.update(bricklayer.LayerProgress{LayerID: b, Read: 1 << 20})
	up, lines := drawing(t, out.String())
	if up != "" || len(lines) != 1 || strings.Join(lines[0], " ") != "Exporting layer aaaaaaaaaaaa 1MiB -" {
		t.Fatalf("first drawing: %q", out.String())
	}

	out.Reset()
	clock = clock.Add(time.Second)
	p.update(bricklayer.LayerProgress{LayerID: a, Read: 3 << 20})
	up, lines = drawing(t, out.String())
	if up != "\x1b[1A" || len(lines) != 2 ||
		strings.Join(lines[0], " ") != "Exporting layer aaaaaaaaaaaa 3MiB 2.97MiB/s" ||
		strings.Join(lines[1], " ") != "Exporting layer bbbbbbbbbbbb 1MiB 1MiB/s" {
		t.Fatalf("second drawing: %q", out.String())
	}

	out.Reset()
	p.update(bricklayer.LayerProgress{LayerID: a, Read: 3 << 20, Done: true, Digest: digest.Digest("sha256:" + strings.Repeat("c", 64)), Size: 1 << 20})
	up, lines = drawing(t, out.String())
	if up != "\x1b[2A" || len(lines) != 2 ||
		strings.Join(lines[0], " ") != "Exported layer aaaaaaaaaaaa 3MiB 2.97MiB/s in 1.01s -> sha256:cccccccccccc (1MiB)" {
		t.Fatalf("a layer done is drawn at once: %q", out.String())
	}

	// A base layer taken from the blob cache: one report, drawn at once.
	out.Reset()
	p.update(bricklayer.LayerProgress{LayerID: strings.Repeat("d", 64), Done: true, Digest: digest.Digest("sha256:" + strings.Repeat("e", 64)), Size: 2 << 20, Taken: bricklayer.TakenBlobCache})
	up, lines = drawing(t, out.String())
	if up != "\x1b[2A" || len(lines) != 3 ||
		strings.Join(lines[2], " ") != "Reused layer dddddddddddd from the blob cache -> sha256:eeeeeeeeeeee (2MiB)" {
		t.Fatalf("a layer taken from the cache: %q", out.String())
	}
}
