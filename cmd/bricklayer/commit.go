package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/bricklayer/bricklayer"
	"github.com/bricklayer/bricklayer/docker"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/transports"
)

type commitFlags struct {
	format             string
	compression        string
	level              int
	disableCompression bool
	compressionFormat  string
	timestamp          int64
	quiet              bool
	iidFile            string
	rm                 bool
	jobs               int
	registry           registryFlags
}

func (a *app) commitCommand() *cobra.Command {
	var f commitFlags
	cmd := &cobra.Command{
		Use:   "commit CONTAINER [DEST]",
		Short: "Write a working container as an image",
		Long: `Write the working container as an image to DEST and print the image ID.

DEST is any containers/image reference: oci:DIR[:TAG], oci-archive:FILE[:TAG],
dir:DIR, docker-archive:FILE[:NAME:TAG], docker://HOST/NAME[:TAG],
containers-storage:NAME. A DEST without a transport is the name of a local
image in the store (a bare NAME becomes localhost/NAME:latest); without DEST
the image is stored without a name.

On a terminal, a line per layer shows the export, then containers/image shows
the copy; --quiet or a non-terminal stderr shows nothing but the ID.`,
		Example: `  bricklayer commit work oci:./out:latest
  bricklayer commit --format docker --compression zstd work docker://localhost:5000/app:1
  bricklayer commit -q --timestamp 0 work myapp`,
		Args: cobra.RangeArgs(1, 2),
		RunE: runE(func(cmd *cobra.Command, args []string) error { return a.commit(cmd, args, &f) }),
	}
	fs := cmd.Flags()
	fs.StringVarP(&f.format, "format", "f", "oci", "manifest and config format: oci or docker")
	fs.StringVar(&f.compression, "compression", "gzip", "layer compression: none, gzip or zstd (zstd needs --format oci)")
	fs.IntVar(&f.level, "compression-level", 0, "compressor level (0: its default)")
	fs.BoolVar(&f.disableCompression, "disable-compression", false, "same as --compression none (buildah's flag)")
	fs.StringVar(&f.compressionFormat, "compression-format", "", "same as --compression (buildah's flag)")
	_ = fs.MarkHidden("disable-compression")
	_ = fs.MarkHidden("compression-format")
	fs.Int64Var(&f.timestamp, "timestamp", 0, "set the image's created time and the new history entry's to this many seconds since the epoch")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "print only the image ID, no progress")
	fs.StringVar(&f.iidFile, "iidfile", "", "also write the image ID (sha256:...) to this file")
	fs.BoolVar(&f.rm, "rm", false, "remove the working container after committing it")
	fs.IntVar(&f.jobs, "jobs", 0, "layers exported at once (0: the library's default)")
	f.registry.register(fs)
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"oci", "docker"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("compression", cobra.FixedCompletions([]string{"none", "gzip", "zstd"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.ValidArgsFunction = a.completeContainers(1)
	return cmd
}

// commitOptions turns the flags into the library's options; every error is
// a usage error.
func (f *commitFlags) commitOptions(cmd *cobra.Command) (bricklayer.CommitOptions, error) {
	var opts bricklayer.CommitOptions
	switch f.format {
	case "oci", "":
	case "docker", "v2s2":
		opts.ManifestType = docker.V2S2MediaTypeManifest
	default:
		return opts, usagef("--format %q: want oci or docker", f.format)
	}
	compression := f.compression
	switch fs := cmd.Flags(); {
	case fs.Changed("compression"):
	case fs.Changed("compression-format") && !f.disableCompression:
		compression = f.compressionFormat
	case fs.Changed("disable-compression") && f.disableCompression:
		compression = "none"
	}
	c, err := bricklayer.ParseCompression(compression)
	if err != nil {
		return opts, usagef("--compression %q: want none, gzip or zstd", compression)
	}
	opts.Compression = c
	if c == bricklayer.CompressionZstd && opts.ManifestType == docker.V2S2MediaTypeManifest {
		return opts, usagef("--compression zstd needs --format oci: Docker v2s2 images cannot describe zstd layers")
	}
	opts.CompressionLevel = f.level
	if f.jobs < 0 {
		return opts, usagef("--jobs %d: must not be negative", f.jobs)
	}
	opts.LayerParallelism = f.jobs
	if cmd.Flags().Changed("timestamp") {
		t := time.Unix(f.timestamp, 0).UTC()
		opts.HistoryTimestamp = &t
	}
	opts.SystemContext = f.registry.systemContext()
	opts.SignaturePolicyPath = f.registry.signaturePolicy
	return opts, nil
}

func (a *app) commit(cmd *cobra.Command, args []string, f *commitFlags) error {
	opts, err := f.commitOptions(cmd)
	if err != nil {
		return err
	}
	store, err := a.openStore()
	if err != nil {
		return err
	}
	destArg := ""
	if len(args) > 1 {
		destArg = args[1]
	}
	dest, err := destination(store, destArg)
	if err != nil {
		return err
	}
	tmpName := ""
	if dest == nil {
		// An image without a name: commit under a temporary name that is
		// removed afterwards, so that the image ID is the config digest as
		// for any other image.
		tmpName = "localhost/bricklayer-commit-" + randomHex(8) + ":latest"
		if dest, err = destination(store, tmpName); err != nil {
			return err
		}
	}
	b, err := openContainer(store, args[0])
	if err != nil {
		return err
	}
	if w := progressOutput(cmd, f.quiet); w != nil {
		opts.ReportWriter = w
		opts.ExportProgress = newExportProgress(w).update
	}
	res, err := b.Commit(cmd.Context(), dest, opts)
	if err != nil {
		return err
	}
	if tmpName != "" {
		if err := store.RemoveNames(res.ImageID, []string{tmpName}); err != nil {
			logrus.Warnf("removing the temporary name %s from image %s: %v", tmpName, res.ImageID, err)
		}
	}
	id, err := imageID(res)
	if err != nil {
		return err
	}
	if f.iidFile != "" {
		if err := os.WriteFile(f.iidFile, []byte("sha256:"+id), 0o644); err != nil {
			return fmt.Errorf("writing the image ID to %s: %w", f.iidFile, err)
		}
	}
	logrus.Debugf("committed %s to %s: image %s, manifest %s", b.ContainerName(), transports.ImageName(dest), id, res.ManifestDigest)
	if f.rm {
		if err := b.Delete(); err != nil {
			return err
		}
	}
	fmt.Fprintln(cmd.OutOrStdout(), id)
	return nil
}

// imageID is the ID of the committed image: its ID in the store, else the
// hex of its config digest, which is what the store would call it.
func imageID(res bricklayer.CommitResult) (string, error) {
	if res.ImageID != "" {
		return res.ImageID, nil
	}
	m, err := manifest.FromBlob(res.Manifest, res.ManifestType)
	if err != nil {
		return "", fmt.Errorf("reading the manifest %s just written: %w", res.ManifestDigest, err)
	}
	return m.ConfigInfo().Digest.Encoded(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
