package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/bricklayer/bricklayer"
	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// progressOutput is where a command draws progress: its stderr when that is
// a terminal and quiet is false, else nil (no progress at all).
func progressOutput(cmd *cobra.Command, quiet bool) io.Writer {
	if quiet {
		return nil
	}
	f, ok := cmd.ErrOrStderr().(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	// An *os.File: copy.Image draws its live bars only on one.
	return f
}

// exportProgress draws one live line per layer while a commit exports the
// container's layers: bytes read and rate, then the blob written. It is
// redrawn at most every redrawEvery, and whenever a layer completes, so the
// last drawing is complete before copy.Image starts writing below it.
type exportProgress struct {
	w     io.Writer
	width int // of the terminal; longer lines are cut, as wrapped ones would break the redraw
	now   func() time.Time

	mu     sync.Mutex
	layers []*layerLine
	byID   map[string]*layerLine
	drawn  int
	last   time.Time
}

const redrawEvery = 100 * time.Millisecond

type layerLine struct {
	id         string
	start, end time.Time
	read       int64
	done       bool
	blob       string
	size       int64
	taken      string // where the blob was taken from, if it was not exported
}

func newExportProgress(w io.Writer) *exportProgress {
	p := &exportProgress{w: w, now: time.Now, byID: map[string]*layerLine{}}
	if f, ok := w.(*os.File); ok {
		if width, _, err := term.GetSize(int(f.Fd())); err == nil {
			p.width = width
		}
	}
	return p
}

// update is a [bricklayer.CommitOptions] ExportProgress function.
func (p *exportProgress) update(ev bricklayer.LayerProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	l := p.byID[ev.LayerID]
	if l == nil {
		l = &layerLine{id: ev.LayerID, start: now}
		p.byID[ev.LayerID] = l
		p.layers = append(p.layers, l)
	}
	l.read = ev.Read
	if ev.Done {
		l.done, l.end, l.blob, l.size, l.taken = true, now, ev.Digest.String(), ev.Size, ev.Taken
	} else if now.Sub(p.last) < redrawEvery {
		return
	}
	p.last = now
	p.draw(now)
}

// draw rewrites the lines drawn before, in place, and adds the new ones.
func (p *exportProgress) draw(now time.Time) {
	var buf bytes.Buffer
	if p.drawn > 0 {
		fmt.Fprintf(&buf, "\x1b[%dA", p.drawn) // cursor up to the first line
	}
	for _, l := range p.layers {
		buf.WriteString("\r\x1b[K")
		line := l.render(now)
		if p.width > 1 && len(line) >= p.width {
			line = line[:p.width-1]
		}
		buf.WriteString(line)
		buf.WriteByte('\n')
	}
	p.drawn = len(p.layers)
	_, _ = p.w.Write(buf.Bytes())
}

func (l *layerLine) render(now time.Time) string {
	id := shortID(l.id)
	if !l.done {
		return fmt.Sprintf("Exporting layer %s  %10s  %12s", id, units.BytesSize(float64(l.read)), rate(l.read, now.Sub(l.start)))
	}
	if l.taken != "" {
		return fmt.Sprintf("Reused    layer %s  from the %s -> %s (%s)", id, l.taken, shortDigest(l.blob), units.BytesSize(float64(l.size)))
	}
	d := l.end.Sub(l.start)
	return fmt.Sprintf("Exported  layer %s  %10s  %12s  in %s -> %s (%s)", id, units.BytesSize(float64(l.read)),
		rate(l.read, d), d.Round(time.Millisecond), shortDigest(l.blob), units.BytesSize(float64(l.size)))
}

func rate(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return units.BytesSize(float64(n)/d.Seconds()) + "/s"
}

// shortID is the first 12 characters of an ID.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// shortDigest is a digest with its value cut to 12 characters.
func shortDigest(d string) string {
	for i := 0; i < len(d); i++ {
		if d[i] == ':' && len(d) > i+13 {
			return d[:i+13]
		}
	}
	return d
}
