package bricklayer

import (
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowProxy forwards TCP connections to a registry, passing what clients
// send at about rate bytes a second: a slow uplink.
type slowProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startSlowProxy(t *testing.T, target string, rate int) *slowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{ln: ln}
	t.Cleanup(p.close)
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, client, server)
			p.mu.Unlock()
			go func() {
				io.Copy(client, server)
				client.Close()
			}()
			go func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := client.Read(buf)
					if n > 0 {
						if _, werr := server.Write(buf[:n]); werr != nil {
							break
						}
						time.Sleep(time.Duration(n) * time.Second / time.Duration(rate))
					}
					if err != nil {
						break
					}
				}
				server.Close()
			}()
		}
	}()
	return p
}

func (p *slowProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// TestPushUploadsAhead pushes a container over a slow link. The new layer
// is uploaded while it is exported, before copy.Image looks for it, and
// once only. Pushed again, the layer is not uploaded a second time: the
// registry has it, and the upload begun ahead is stopped.
func TestPushUploadsAhead(t *testing.T) {
	reg := startRegistry(t, t.TempDir())
	env := newTestEnv(t)
	sys := reg.sys(t, env.sys)
	proxy := startSlowProxy(t, reg.addr, 8<<20)

	b, _ := env.newFilledBuilder(t, "work", 5)
	// Random bytes do not compress: 16 MiB take about two seconds to send.
	writeRandomFile(t, filepath.Join(b.MountPoint(), "random"), 16<<20)

	const repo = "ahead/img"
	var layer string
	for i, tag := range []string{"1", "2"} {
		before := len(reg.requests(t))
		ref := dockerRef(t, proxy.ln.Addr().String(), repo+":"+tag)
		res, err := b.Commit(env.ctx, ref, CommitOptions{SystemContext: sys})
		if err != nil {
			t.Fatalf("push %d: %v", i+1, err)
		}
		checkResult(t, res, checkImageWith(t, ref, sys, wantImage{Layers: 1}))
		layers := layerDigests(t, res.Manifest)
		if layer == "" {
			layer = layers[0]
		} else if layers[0] != layer {
			t.Fatalf("push %d: layer %s, the first push made %s", i+1, layers[0], layer)
		}

		requests := reg.requests(t)[before:]
		uploads := 0
		for _, d := range blobUploads(requests, repo) {
			if d == layer {
				uploads++
			}
		}
		switch i {
		case 0:
			if uploads != 1 {
				t.Errorf("push 1: layer %s uploaded %d times, want once", layer, uploads)
			}
			// Ahead: the upload begins before copy.Image asks whether the
			// registry has the layer. copy.Image's HEAD is the last one for
			// the layer: the uploader may ask too, once the export ends,
			// and that can come before its own POST when the upload is
			// slow to start.
			post := slices.IndexFunc(requests, func(r string) bool { return strings.HasPrefix(r, "POST /v2/"+repo+"/blobs/uploads/") })
			head := -1
			for i, r := range requests {
				if r == "HEAD /v2/"+repo+"/blobs/"+layer {
					head = i
				}
			}
			if post < 0 || head < 0 || post > head {
				t.Errorf("push 1: the layer's upload began at request %d, copy.Image asked for it at %d; want the upload first", post, head)
			}
		case 1:
			if uploads != 0 {
				t.Errorf("push 2: layer %s uploaded %d times, want none (the registry has it)", layer, uploads)
			}
		}
	}
}
