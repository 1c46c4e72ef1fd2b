// Package benchtree writes deterministic file trees for benchmarks, and tars
// a tree the plain way for the in-process floor that commits are measured
// against.
//
// A tree mixes what a layer usually holds, in the proportions that
// ../shared/bench/mktree.sh uses: 18% small text files (source-like) in a
// three-level directory tree with a few symlinks, hard links and executables,
// 10% medium files of 64-512 KiB (random, low-entropy or text), and 72% large
// files: random (incompressible) 28%, text 18%, 4-bit alphabet 10%,
// alternating blocks of random and zero bytes (1 MiB, or a quarter of the
// file when that is smaller) 10%, zeros 6%. The bytes are
// not mktree.sh's; only the mix is the same.
package benchtree

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Options say what tree [Write] makes.
type Options struct {
	// Size is the approximate number of bytes of file content; the tree
	// holds at least one file of each kind whatever it says.
	Size int64
	// Seed selects the content: the same Seed and Size give byte-identical
	// trees (names, contents, modes and times).
	Seed uint64
	// MTime is the modification time of every entry; the zero value means
	// 2023-11-14T22:13:20Z (mktree.sh's epoch).
	MTime time.Time
}

// Stats count what [Write] made.
type Stats struct {
	// Files is the number of regular files, hard links excluded.
	Files int
	// Dirs is the number of directories below the root.
	Dirs int
	// Symlinks and Hardlinks are the numbers of links made.
	Symlinks, Hardlinks int
	// Bytes is the total size of the regular files' contents.
	Bytes int64
}

const mib = 1 << 20

// Write makes a tree under root, which must not exist or be an empty
// directory. On error the tree is incomplete and the caller removes it.
func Write(root string, opts Options) (Stats, error) {
	w := &writer{root: root, opts: opts}
	if w.opts.MTime.IsZero() {
		w.opts.MTime = time.Unix(1700000000, 0).UTC()
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return Stats{}, fmt.Errorf("creating tree root %s: %w", root, err)
	}
	if err := w.write(); err != nil {
		return Stats{}, err
	}
	return w.stats, nil
}

type writer struct {
	root  string
	opts  Options
	stats Stats
	dirs  []string // made so far, parents first
	links []string // symlinks, whose times are set without following them
	buf   *bufio.Writer
}

// fraction is pct percent of the tree's size, at least one byte.
func (w *writer) fraction(pct int64) int64 {
	return max(w.opts.Size*pct/100, 1)
}

func (w *writer) write() error {
	if err := w.smallFiles(w.fraction(18)); err != nil {
		return err
	}
	if err := w.mediumFiles(w.fraction(10)); err != nil {
		return err
	}
	if err := w.largeFiles(); err != nil {
		return err
	}
	return w.setTimes()
}

// smallFiles writes text files of skewed sizes (median about 2.5 KiB, mean
// about 8 KiB), 40 to a directory, with a symlink to every 97th, a hard
// link to every 1000th and every 250th executable.
func (w *writer) smallFiles(budget int64) error {
	rng := w.rng("small")
	exts := []string{"c", "h", "go", "py", "md"}
	var total int64
	for k := 0; total < budget; k++ {
		dir := fmt.Sprintf("src/p%d/m%d", k/400, k/40%10)
		if k%40 == 0 {
			if err := w.mkdir(dir); err != nil {
				return err
			}
		}
		f := rng.Float64()
		size := min(100+int64(f*f*f*f*40000), budget-total)
		name := fmt.Sprintf("f%d.%s", k, exts[k%5])
		mode := os.FileMode(0o644)
		if k%250 == 3 {
			mode = 0o755
		}
		if err := w.file(filepath.Join(dir, name), mode, size, textSource(rng)); err != nil {
			return err
		}
		total += size
		if k%97 == 0 {
			if err := w.symlink(name, filepath.Join(dir, fmt.Sprintf("link%d", k))); err != nil {
				return err
			}
		}
		if k%1000 == 0 {
			if err := w.hardlink(filepath.Join(dir, name), filepath.Join(dir, fmt.Sprintf("hard%d", k))); err != nil {
				return err
			}
		}
	}
	return nil
}

// mediumFiles writes files of 64 to 512 KiB, in turn random, low-entropy
// and text.
func (w *writer) mediumFiles(budget int64) error {
	if err := w.mkdir("media"); err != nil {
		return err
	}
	var total int64
	for n := 0; total < budget; n++ {
		size := int64(64+n*37%449) * 1024
		label := fmt.Sprintf("med%d", n)
		var name string
		var src io.Reader
		switch n % 3 {
		case 0:
			name, src = "m"+fmt.Sprint(n)+".bin", randomSource(w.rng(label))
		case 1:
			name, src = "m"+fmt.Sprint(n)+".dat", lowEntropySource(w.rng(label))
		default:
			name, src = "m"+fmt.Sprint(n)+".log", textSource(w.rng(label))
		}
		if err := w.file(filepath.Join("media", name), 0o644, size, src); err != nil {
			return err
		}
		total += size
	}
	return nil
}

// largeFiles writes files of Size/16 bytes each, between 1 and 64 MiB, at
// least one of each kind.
func (w *writer) largeFiles() error {
	if err := w.mkdir("big"); err != nil {
		return err
	}
	size := min(max(w.opts.Size/16, mib), 64*mib)
	count := func(pct int64) int {
		return int(max((w.fraction(pct)+size/2)/size, 1))
	}
	kinds := []struct {
		prefix string
		pct    int64
		src    func(label string) io.Reader
	}{
		{"rand", 28, func(l string) io.Reader { return randomSource(w.rng(l)) }},
		{"text", 18, func(l string) io.Reader { return textSource(w.rng(l)) }},
		{"low", 10, func(l string) io.Reader { return lowEntropySource(w.rng(l)) }},
		{"mixed", 10, func(l string) io.Reader { return &mixedReader{rnd: randomSource(w.rng(l)), block: min(mib, size/4)} }},
		{"zero", 6, func(string) io.Reader { return zeroReader{} }},
	}
	for _, k := range kinds {
		for j := range count(k.pct) {
			label := fmt.Sprintf("%s%d", k.prefix, j)
			if err := w.file(filepath.Join("big", label+".img"), 0o644, size, k.src(label)); err != nil {
				return err
			}
		}
	}
	return nil
}

// rng is a random source seeded from the tree's seed and label.
func (w *writer) rng(label string) *rand.Rand {
	var seed [8]byte
	binary.LittleEndian.PutUint64(seed[:], w.opts.Seed)
	return rand.New(rand.NewChaCha8(sha256.Sum256(append(seed[:], label...))))
}

func (w *writer) mkdir(rel string) error {
	p := filepath.Join(w.root, rel)
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return fmt.Errorf("creating directory %s: %w", p, err)
	}
	// Parents made by MkdirAll are recorded before their children.
	var made []string
	for d := rel; d != "." && d != ""; d = filepath.Dir(d) {
		made = append(made, d)
	}
	for i := len(made) - 1; i >= 0; i-- {
		if !w.seen(made[i]) {
			w.dirs = append(w.dirs, made[i])
			w.stats.Dirs++
		}
	}
	return nil
}

func (w *writer) seen(dir string) bool {
	for i := len(w.dirs) - 1; i >= 0; i-- {
		if w.dirs[i] == dir {
			return true
		}
	}
	return false
}

// file writes size bytes of src into a new file.
func (w *writer) file(rel string, mode os.FileMode, size int64, src io.Reader) (err error) {
	p := filepath.Join(w.root, rel)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing %s: %w", p, cerr)
		}
	}()
	if err := f.Chmod(mode); err != nil { // not subject to the umask
		return fmt.Errorf("setting the mode of %s: %w", p, err)
	}
	if w.buf == nil {
		w.buf = bufio.NewWriterSize(f, mib)
	}
	w.buf.Reset(f)
	if _, err := io.CopyN(w.buf, src, size); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := w.buf.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	w.stats.Files++
	w.stats.Bytes += size
	return nil
}

func (w *writer) symlink(target, rel string) error {
	p := filepath.Join(w.root, rel)
	if err := os.Symlink(target, p); err != nil {
		return fmt.Errorf("creating symlink %s: %w", p, err)
	}
	w.links = append(w.links, p)
	w.stats.Symlinks++
	return nil
}

func (w *writer) hardlink(oldRel, rel string) error {
	p := filepath.Join(w.root, rel)
	if err := os.Link(filepath.Join(w.root, oldRel), p); err != nil {
		return fmt.Errorf("creating hard link %s: %w", p, err)
	}
	w.stats.Hardlinks++
	return nil
}

// setTimes gives every entry the tree's mtime, directories last and deepest
// first, so that no later change moves them.
func (w *writer) setTimes() error {
	t := w.opts.MTime
	err := filepath.WalkDir(w.root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&os.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, t, t)
	})
	if err != nil {
		return fmt.Errorf("setting times under %s: %w", w.root, err)
	}
	tv := []unix.Timeval{unix.NsecToTimeval(t.UnixNano()), unix.NsecToTimeval(t.UnixNano())}
	for _, p := range w.links {
		if err := unix.Lutimes(p, tv); err != nil {
			return fmt.Errorf("setting the times of symlink %s: %w", p, err)
		}
	}
	for i := len(w.dirs) - 1; i >= 0; i-- {
		p := filepath.Join(w.root, w.dirs[i])
		if err := os.Chtimes(p, t, t); err != nil {
			return fmt.Errorf("setting the times of %s: %w", p, err)
		}
	}
	return nil
}
