package interop

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bricklayer/bricklayer"
	is "go.podman.io/image/v5/storage"
)

// TestConcurrentCommitsIntoStore: a builder may be committed from several
// goroutines at once, into its own store too, where the commits write the
// same new layer under the same ID. It failed with "another layer has that
// ID" when one commit put the layer between the other's check for it and
// its own put.
func TestConcurrentCommitsIntoStore(t *testing.T) {
	ctx := context.Background()
	store, sys, policy := newPlainStore(t)
	b, mp := mountBuilder(t, ctx, store, bricklayer.BuilderOptions{FromImage: "scratch"})

	const rounds, perRound = 3, 4
	for r := range rounds {
		// New content each round, so that each round writes a new layer.
		for i := range 50 {
			if err := os.WriteFile(filepath.Join(mp, fmt.Sprintf("file%02d", i)), []byte(strings.Repeat(fmt.Sprint(r, i), 5000)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, perRound)
		for i := range perRound {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ref, err := is.Transport.ParseStoreReference(store, fmt.Sprintf("localhost/concurrent-%d-%d:latest", r, i))
				if err != nil {
					errs[i] = err
					return
				}
				// A different compression per commit: the config differs, the layer does not.
				_, errs[i] = b.Commit(ctx, ref, bricklayer.CommitOptions{Compression: bricklayer.Compression(i % 3), SystemContext: sys, SignaturePolicyPath: policy})
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d, commit %d: %v", r, i, err)
			}
		}
		if t.Failed() {
			return
		}
	}
}
