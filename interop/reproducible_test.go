package interop

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bricklayer/bricklayer"
	"go.podman.io/image/v5/transports/alltransports"
)

// TestCommitReproducibleWithDeletions: a container that deletes files of
// its base image commits to the same image twice, seconds apart, when the
// history timestamp is fixed. It failed before tarnorm normalised the
// modification time of whiteout entries, which the store writes as the
// time of the export: the layer digest changed every second, and a commit
// into the store, which reads each layer twice, failed with "changed while
// it was exported" when a second boundary fell between the two reads.
func TestCommitReproducibleWithDeletions(t *testing.T) {
	ctx := context.Background()
	store, sys, policy := newPlainStore(t)

	base, mp := mountBuilder(t, ctx, store, bricklayer.BuilderOptions{FromImage: "scratch"})
	for _, name := range []string{"dir/a", "dir/b", "file"} {
		if err := os.MkdirAll(filepath.Join(mp, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mp, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	unmount(t, base)
	commitToStore(t, ctx, store, base, "localhost/reproducible-base:latest", sys, policy)

	b, mp := mountBuilder(t, ctx, store, bricklayer.BuilderOptions{FromImage: "localhost/reproducible-base:latest", SystemContext: sys, SignaturePolicyPath: policy})
	if err := os.RemoveAll(filepath.Join(mp, "dir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(mp, "file")); err != nil {
		t.Fatal(err)
	}
	unmount(t, b)

	stamp := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	commit := func() bricklayer.CommitResult {
		t.Helper()
		dest, err := alltransports.ParseImageName("oci:" + filepath.Join(t.TempDir(), "layout") + ":latest")
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.Commit(ctx, dest, bricklayer.CommitOptions{Compression: bricklayer.CompressionNone, HistoryTimestamp: &stamp, SystemContext: sys, SignaturePolicyPath: policy})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	first := commit()
	time.Sleep(1100 * time.Millisecond)
	if second := commit(); second.ManifestDigest != first.ManifestDigest {
		t.Errorf("two commits of the same container a second apart differ:\n%s\n%s", first.Manifest, second.Manifest)
	}
}
