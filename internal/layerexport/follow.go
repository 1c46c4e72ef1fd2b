package layerexport

import (
	"io"
	"os"
	"sync"
)

// growingFile is a blob file being written, which a reader may follow.
type growingFile struct {
	f *os.File

	mu      sync.Mutex
	grown   sync.Cond // broadcast when written or ended changes
	written int64
	ended   bool
	err     error // why the blob is incomplete, once ended
}

func newGrowingFile(f *os.File) *growingFile {
	g := &growingFile{f: f}
	g.grown.L = &g.mu
	return g
}

func (g *growingFile) Write(p []byte) (int, error) {
	n, err := g.f.Write(p)
	g.mu.Lock()
	g.written += int64(n)
	g.mu.Unlock()
	g.grown.Broadcast()
	return n, err
}

// end says the file is complete (err nil) or never will be. Only the first
// call counts: it alone returns true.
func (g *growingFile) end(err error) bool {
	g.mu.Lock()
	first := !g.ended
	if first {
		g.ended, g.err = true, err
	}
	g.mu.Unlock()
	g.grown.Broadcast()
	return first
}

// reader reads the file from its start, waiting for bytes not yet written.
func (g *growingFile) reader() io.Reader {
	return &followReader{g: g}
}

type followReader struct {
	g   *growingFile
	off int64
}

func (r *followReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	g := r.g
	g.mu.Lock()
	for r.off == g.written && !g.ended {
		g.grown.Wait()
	}
	avail, ended, err := g.written-r.off, g.ended, g.err
	g.mu.Unlock()
	if ended && err != nil {
		return 0, err
	}
	if avail == 0 {
		return 0, io.EOF
	}
	// ReadAt does not move the offset the writer writes at.
	n, rerr := g.f.ReadAt(p[:min(int64(len(p)), avail)], r.off)
	r.off += int64(n)
	if rerr == io.EOF && n > 0 {
		rerr = nil
	}
	return n, rerr
}
