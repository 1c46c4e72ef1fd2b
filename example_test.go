package bricklayer_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/bricklayer/bricklayer"
	"go.podman.io/image/v5/transports/alltransports"
	"go.podman.io/storage"
)

// Make an image from scratch with one file and a command, write it to an
// OCI layout, and read it back as any containers/image user would.
func ExampleBuilder_Commit() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "bricklayer-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A store of our own: vfs driver, no system configuration read.
	store, err := storage.GetStore(storage.StoreOptions{
		GraphRoot:       filepath.Join(dir, "storage"),
		RunRoot:         filepath.Join(dir, "run"),
		GraphDriverName: "vfs",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Shutdown(true) //nolint:errcheck

	// A working container with nothing in it.
	b, err := bricklayer.NewBuilder(ctx, store, bricklayer.BuilderOptions{FromImage: bricklayer.Scratch, Container: "example"})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Delete() //nolint:errcheck

	// Put a file in its root filesystem.
	root, err := b.Mount()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "hello.txt"), []byte("hello\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := b.Unmount(); err != nil {
		log.Fatal(err)
	}

	// Set its config; setters change memory, Save keeps them for later
	// processes (OpenBuilder).
	b.SetCmd([]string{"/bin/cat", "/hello.txt"})
	b.SetEnv("GREETING", "hello")
	if err := b.Save(); err != nil {
		log.Fatal(err)
	}

	// Commit to any containers/image destination.
	dest, err := alltransports.ParseImageName("oci:" + filepath.Join(dir, "layout") + ":latest")
	if err != nil {
		log.Fatal(err)
	}
	epoch := time.Unix(0, 0).UTC()
	res, err := b.Commit(ctx, dest, bricklayer.CommitOptions{
		Compression:      bricklayer.CompressionZstd,
		HistoryTimestamp: &epoch,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("manifest:", res.ManifestType)

	// Check it: every digest, diffID and size recomputed.
	report, err := bricklayer.Verify(ctx, dest, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("verified:", report.OK())

	// Read it back.
	img, err := dest.NewImage(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer img.Close()
	config, err := img.OCIConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range img.LayerInfos() {
		fmt.Println("layer:", l.MediaType)
	}
	fmt.Println("created:", config.Created.UTC())
	fmt.Println("cmd:", config.Config.Cmd)
	fmt.Println("env:", config.Config.Env)
	// Output:
	// manifest: application/vnd.oci.image.manifest.v1+json
	// verified: true
	// layer: application/vnd.oci.image.layer.v1.tar+zstd
	// created: 1970-01-01 00:00:00 +0000 UTC
	// cmd: [/bin/cat /hello.txt]
	// env: [GREETING=hello]
}
