package bricklayer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/directory"
	"go.podman.io/image/v5/types"
	"golang.org/x/sys/unix"
)

// Another process's commit to a directory is played by the test taking the
// same flock on it: flock(2) locks conflict between open file descriptions,
// within one process too.

// lockDirAsAnotherProcess takes the flock a commit takes on dir, making dir
// if needed, and returns the function that drops it.
func lockDirAsAnotherProcess(t *testing.T, dir string) (unlock func()) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(d.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		d.Close()
		t.Fatalf("locking %s: %v", dir, err)
	}
	t.Cleanup(func() { d.Close() })
	return func() { d.Close() }
}

// commitInBackground starts b's commit to dest and returns the channel its
// error comes on.
func commitInBackground(ctx context.Context, env *testEnv, b *Builder, dest types.ImageReference) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := b.Commit(ctx, dest, CommitOptions{SystemContext: env.sys})
		done <- err
	}()
	return done
}

// assertWaiting fails the test if the commit ends within d.
func assertWaiting(t *testing.T, done <-chan error, d time.Duration, while string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("the commit ended (error: %v) %s", err, while)
	case <-time.After(d):
	}
}

// layoutTags is the sorted list of the tags in the OCI layout dir's index.
func layoutTags(t *testing.T, dir string) []string {
	t.Helper()
	var index v1.Index
	ociLayout{t: t, dir: dir}.readJSON(filepath.Join(dir, "index.json"), &index)
	var tags []string
	for _, m := range index.Manifests {
		tags = append(tags, m.Annotations[v1.AnnotationRefName])
	}
	slices.Sort(tags)
	return tags
}

// TestConcurrentCommitWaitsForAnotherProcess: a commit into an OCI layout
// that another process is committing into waits for it, and then reads the
// index that process wrote, so both tags are kept.
func TestConcurrentCommitWaitsForAnotherProcess(t *testing.T) {
	env := newTestEnv(t)
	b, want := env.newFilledBuilder(t, "work", 31)
	dir := env.dir(t, "layout")
	if _, err := b.Commit(env.ctx, ociRef(t, dir, "one"), CommitOptions{SystemContext: env.sys}); err != nil {
		t.Fatal(err)
	}

	unlock := lockDirAsAnotherProcess(t, dir)
	done := commitInBackground(env.ctx, env, b, ociRef(t, dir, "two"))
	assertWaiting(t, done, 1500*time.Millisecond, "while another process held the layout")

	// The other process's commit ends by writing its tag into the index.
	l := ociLayout{t: t, dir: dir}
	index, one := l.index("one")
	l.setIndexEntry("three", index.Manifests[one])
	unlock()

	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, wantTags := layoutTags(t, dir), []string{"one", "three", "two"}; !slices.Equal(got, wantTags) {
		t.Errorf("layout tags %q, want %q", got, wantTags)
	}
	img := checkImage(t, ociRef(t, dir, "two"), wantImage{Layers: 1})
	compareTrees(t, want, img.Tree)
}

// TestConcurrentCommitRelocksARemovedDirectory: a commit waiting for a
// layout whose holder fails, removes the directory and lets go, must not
// take the lock on the removed directory while another process holds the
// one now at the path.
func TestConcurrentCommitRelocksARemovedDirectory(t *testing.T) {
	env := newTestEnv(t)
	b, want := env.newFilledBuilder(t, "work", 32)
	dir := env.dir(t, "layout")

	unlockFirst := lockDirAsAnotherProcess(t, dir)
	done := commitInBackground(env.ctx, env, b, ociRef(t, dir, "latest"))
	assertWaiting(t, done, 300*time.Millisecond, "while another process held the layout")

	// The first holder fails and removes what it made; a third process makes
	// the directory again and takes it before the first lets go.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	unlockSecond := lockDirAsAnotherProcess(t, dir)
	unlockFirst()
	assertWaiting(t, done, 1500*time.Millisecond, "while a third process held the layout made again")

	unlockSecond()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	img := checkImage(t, ociRef(t, dir, "latest"), wantImage{Layers: 1})
	compareTrees(t, want, img.Tree)
}

// TestCommitWhereNoDirectoryCanBeMade: /proc makes no directories, and
// says ENOENT when asked to; a commit there fails at once (it spun, making
// the parent again, until it was killed).
func TestCommitWhereNoDirectoryCanBeMade(t *testing.T) {
	if _, err := os.Stat("/proc/self"); err != nil {
		t.Skip("no /proc")
	}
	env := newTestEnv(t)
	b, _ := env.newFilledBuilder(t, "work", 36)
	for _, dest := range []string{"oci:/proc/bricklayer-test-layout:x", "dir:/proc/bricklayer-test-dir"} {
		done := make(chan error, 1)
		go func() {
			_, err := b.Commit(env.ctx, parseRef(t, dest), CommitOptions{SystemContext: env.sys})
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "work") {
				t.Errorf("commit to %s: %v, want an error naming the container", dest, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("commit to %s did not return", dest)
		}
	}
}

// TestConcurrentCommitGivesUpWaiting: a commit waiting for another
// process's commit to a layout stops when its context ends, says what it
// waited for, and leaves the layout as it was.
func TestConcurrentCommitGivesUpWaiting(t *testing.T) {
	env := newTestEnv(t)
	b, _ := env.newFilledBuilder(t, "work", 33)
	for _, tc := range []struct {
		name string
		ref  func(dir string) types.ImageReference
	}{
		{"oci", func(dir string) types.ImageReference { return ociRef(t, dir, "latest") }},
		{"dir", func(dir string) types.ImageReference {
			ref, err := directory.NewReference(dir)
			if err != nil {
				t.Fatal(err)
			}
			return ref
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := env.dir(t, "layout")
			lockDirAsAnotherProcess(t, dir)
			ctx, cancel := context.WithCancel(env.ctx)
			done := commitInBackground(ctx, env, b, tc.ref(dir))
			assertWaiting(t, done, 300*time.Millisecond, "while another process held the directory")
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "work") {
					t.Errorf("got %v, want context.Canceled naming the container and %s", err, dir)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the commit did not stop when its context ended")
			}
			assertEmptyDir(t, dir)
		})
	}
}

// TestCancelledCommitWaitsForNothing: a commit whose context has ended
// before it starts says so, not that it waited for another commit, and
// makes no directory. (With a free destination, the select between taking
// it and the ended context would pick either.)
func TestCancelledCommitWaitsForNothing(t *testing.T) {
	env := newTestEnv(t)
	b, _ := env.newFilledBuilder(t, "work", 35)
	ctx, cancel := context.WithCancel(env.ctx)
	cancel()
	for i := range 20 {
		dir := env.dir(t, "layout")
		_, err := b.Commit(ctx, ociRef(t, dir, "latest"), CommitOptions{SystemContext: env.sys})
		if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "waiting") {
			t.Fatalf("try %d: %v, want context.Canceled without waiting for another commit", i, err)
		}
		assertAbsent(t, dir)
	}
}

// TestFailedCommitRemovesTheDirectoryItMade: the directory a commit made
// to lock it goes when the commit fails after writing blobs into it; one
// that was there before stays, emptied of what the commit added.
func TestFailedCommitRemovesTheDirectoryItMade(t *testing.T) {
	env := newTestEnv(t)
	b, _ := env.newFilledBuilder(t, "work", 34)
	// The layer is exported into the layout before the policy is read.
	opts := CommitOptions{SystemContext: env.sys, SignaturePolicyPath: filepath.Join(env.tmp, "no-such-policy.json")}

	made := env.dir(t, "made")
	if _, err := b.Commit(env.ctx, ociRef(t, made, "latest"), opts); err == nil {
		t.Fatal("a commit with a missing policy file succeeded")
	}
	assertAbsent(t, made)

	existing := env.dir(t, "existing")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(env.ctx, ociRef(t, existing, "latest"), opts); err == nil {
		t.Fatal("a commit with a missing policy file succeeded")
	}
	assertEmptyDir(t, existing)
}

// TestArchiveWrittenBeside: an archive is written to a file beside it and
// put in place only when complete. A docker-archive is never put over one
// that another commit wrote meanwhile (nor one there before: refused at
// once), but does take the place of an empty file; an oci-archive replaces
// what is there. Nothing is left beside it either way.
func TestArchiveWrittenBeside(t *testing.T) {
	env := newTestEnv(t)
	b, _ := env.newFilledBuilder(t, "work", 37)
	dir := env.dir(t, "archives")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "image.tar")
	dest := parseRef(t, "docker-archive:"+path+":localhost/app:1")

	// Another process's archive appears while ours is written.
	ref, done, abandon, err := archiveViaTemp(dest)
	if err != nil {
		t.Fatal(err)
	}
	tmp := localPath(ref)
	if filepath.Dir(tmp) != dir || tmp == path {
		t.Fatalf("the archive is written to %s, want a file beside %s", tmp, path)
	}
	for p, content := range map[string]string{tmp: "ours", path: "theirs"} {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := done(); !errors.Is(err, errArchiveExists) {
		t.Errorf("putting ours in place over theirs: %v, want errArchiveExists", err)
	}
	abandon()
	if got, _ := os.ReadFile(path); string(got) != "theirs" {
		t.Errorf("the archive holds %q, want the other commit's", got)
	}
	if got := listFiles(t, dir); !slices.Equal(got, []string{"image.tar"}) {
		t.Errorf("%s holds %v, want the archive alone", dir, got)
	}

	// A commit to it now is refused, and leaves it as it was.
	if _, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys}); !errors.Is(err, errArchiveExists) || !strings.Contains(err.Error(), path) {
		t.Errorf("commit to an existing docker-archive: %v, want errArchiveExists naming it", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "theirs" {
		t.Errorf("the archive holds %q after a refused commit", got)
	}

	// An empty file is taken; an oci-archive replaces what is there.
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(env.ctx, dest, CommitOptions{SystemContext: env.sys}); err != nil {
		t.Fatalf("commit to an empty file: %v", err)
	}
	checkImage(t, dest, wantImage{Layers: 1})
	ociDest := parseRef(t, "oci-archive:"+path+":x")
	if _, err := b.Commit(env.ctx, ociDest, CommitOptions{SystemContext: env.sys}); err != nil {
		t.Fatalf("commit of an oci-archive over the docker-archive: %v", err)
	}
	checkImage(t, ociDest, wantImage{Layers: 1})
	if got := listFiles(t, dir); !slices.Equal(got, []string{"image.tar"}) {
		t.Errorf("%s holds %v, want the archive alone", dir, got)
	}
}

// TestArchiveModesAndSpecialFiles: a new archive gets the mode os.Create
// would give it (0666 less the umask), a replaced one keeps its mode; an
// archive destination that is a FIFO or a device is written in place, as
// containers/image writes it, and stays what it is.
func TestArchiveModesAndSpecialFiles(t *testing.T) {
	env := newTestEnv(t)
	b, _ := env.newFilledBuilder(t, "work", 39)
	dir := env.dir(t, "archives")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	commit := func(dest string) {
		t.Helper()
		if _, err := b.Commit(env.ctx, parseRef(t, dest), CommitOptions{SystemContext: env.sys}); err != nil {
			t.Fatalf("commit to %s: %v", dest, err)
		}
	}
	old := unix.Umask(0o077)
	path := filepath.Join(dir, "private.tar")
	commit("oci-archive:" + path + ":x")
	unix.Umask(old)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("new archive under umask 077: %v, %v, want mode 0600", fi, err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	commit("oci-archive:" + path + ":x")
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("replaced archive: %v, %v, want its mode 0640 kept", fi, err)
	}

	fifo := filepath.Join(dir, "pipe")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	read := make(chan []byte, 1)
	go func() {
		data, _ := os.ReadFile(fifo) // waits for the writer, reads to its end
		read <- data
	}()
	commit("oci-archive:" + fifo + ":x")
	select {
	case data := <-read:
		if len(data) < 512 || string(data[257:262]) != "ustar" {
			t.Errorf("the FIFO's reader got %d bytes, want the tar archive", len(data))
		}
	case <-time.After(30 * time.Second):
		t.Error("the FIFO's reader got nothing") // (and is left waiting)
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO is now %v (%v)", fi, err)
	}
	if os.Geteuid() == 0 {
		null := filepath.Join(dir, "null")
		if err := unix.Mknod(null, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
			t.Fatal(err)
		}
		commit("oci-archive:" + null + ":x")
		commit("docker-archive:" + null + ":localhost/x:1")
		if fi, err := os.Lstat(null); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
			t.Errorf("the device is now %v (%v)", fi, err)
		}
	}
	if got := listFiles(t, dir); !slices.Equal(got, []string{"null", "pipe", "private.tar"}) && !slices.Equal(got, []string{"pipe", "private.tar"}) {
		t.Errorf("%s holds %v, want the archives alone", dir, got)
	}
}
