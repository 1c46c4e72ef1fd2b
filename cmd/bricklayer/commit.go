package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
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
	retry              int
	retryDelay         time.Duration
	blobCache          string
	registry           registryFlags

	sourceDateEpoch   int64
	rewriteTimestamps bool
	squash            bool
	squashNewLayers   bool
	omitHistory       bool
	emptyLayer        bool
	unsetEnv          []string
	unsetLabel        []string
	annotations       []string
	layerAnnotations  []string
	signBy            string
	signBySigstoreKey string
	signByOpenPGPKey  string
	signPassphrase    string
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
  bricklayer commit --compression zstd work docker://localhost:5000/app:1
  bricklayer commit --format docker work docker-archive:./app.tar:app:1
  bricklayer commit -q --timestamp 0 work myapp
  SOURCE_DATE_EPOCH=1700000000 bricklayer commit --rewrite-timestamps work oci:./out:1
  bricklayer commit --squash --unsetenv DEBUG work docker://localhost:5000/app:1
  bricklayer commit --retry 3 --retry-delay 5s work docker://registry.example.com/app:1
  bricklayer commit --blob-cache ~/.cache/bricklayer work oci-archive:./app.tar:1`,
		Args: cobra.RangeArgs(1, 2),
		RunE: runE(func(cmd *cobra.Command, args []string) error { return a.commit(cmd, args, &f) }),
	}
	fs := cmd.Flags()
	fs.StringVarP(&f.format, "format", "f", "oci", "manifest and config format: oci or docker")
	fs.StringVar(&f.compression, "compression", "gzip", "layer compression: none, gzip or zstd (zstd needs --format oci)")
	fs.IntVar(&f.level, "compression-level", 0, "compressor level: gzip -2 to 9, zstd 1 to 22 (0: its default, gzip 4, zstd 3)")
	fs.BoolVarP(&f.disableCompression, "disable-compression", "D", false, "same as --compression none (buildah's flag)")
	fs.StringVar(&f.compressionFormat, "compression-format", "", "same as --compression (buildah's flag)")
	_ = fs.MarkHidden("disable-compression")
	_ = fs.MarkHidden("compression-format")
	fs.Int64Var(&f.timestamp, "timestamp", 0, "set the image's created time and the new history entry's to this many seconds since the epoch")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "print only the image ID, no progress")
	fs.StringVar(&f.iidFile, "iidfile", "", "also write the image ID (sha256:...) to this file")
	fs.Int64Var(&f.sourceDateEpoch, "source-date-epoch", 0, "record this time (seconds since the epoch) as the image's created time and its new history entries' (default: $SOURCE_DATE_EPOCH)")
	fs.BoolVar(&f.rewriteTimestamps, "rewrite-timestamps", false, "clamp the times of the files in the new layers to --source-date-epoch (or --timestamp)")
	fs.BoolVar(&f.squash, "squash", false, "write the image as a single layer, base image included")
	fs.BoolVar(&f.squashNewLayers, "squash-new-layers", false, "keep the base image's layers and write everything since as one layer")
	fs.BoolVar(&f.omitHistory, "omit-history", false, "write the config without history")
	fs.BoolVar(&f.emptyLayer, "empty-layer", false, "leave the container's file changes out: a history entry and config only")
	fs.StringArrayVar(&f.unsetEnv, "unsetenv", nil, "leave this environment variable out of the image (repeatable)")
	fs.StringArrayVar(&f.unsetLabel, "unsetlabel", nil, "leave this label out of the image (repeatable)")
	fs.StringArrayVar(&f.annotations, "annotation", nil, "add a manifest annotation, KEY=VALUE (repeatable; OCI format)")
	fs.StringArrayVar(&f.layerAnnotations, "layer-annotation", nil, "annotate the new layers' descriptors, KEY=VALUE (repeatable; OCI format)")
	fs.StringVar(&f.signBy, "sign-by", "", "sign with this GnuPG key fingerprint (needs a build with gpgme)")
	fs.StringVar(&f.signByOpenPGPKey, "sign-by-openpgp-key", "", "make a simple signature with this OpenPGP private key file (gpg --export-secret-keys)")
	fs.StringVar(&f.signBySigstoreKey, "sign-by-sigstore-private-key", "", "sign with this sigstore (cosign) private key file")
	fs.StringVar(&f.signPassphrase, "sign-passphrase-file", "", "read the signing key's passphrase from this file")
	fs.BoolVar(&f.rm, "rm", false, "remove the working container after committing it")
	fs.IntVar(&f.jobs, "jobs", 0, "layers exported at once, one compressing at a time (0: the library's default, 2)")
	fs.IntVar(&f.retry, "retry", 0, "copy again up to this many times after a network or registry failure")
	fs.DurationVar(&f.retryDelay, "retry-delay", 0, "wait before each retry, such as 500ms or 5s (0: 2s)")
	fs.StringVar(&f.blobCache, "blob-cache", "", "keep the base image's compressed layers in this directory, and take them from there next time")
	f.registry.register(fs, &a.storage)
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
	if err := bricklayer.CheckCompressionLevel(c, f.level); err != nil {
		return opts, usagef("--compression-level %d: %v", f.level, err)
	}
	opts.CompressionLevel = f.level
	if f.jobs < 0 {
		return opts, usagef("--jobs %d: must not be negative", f.jobs)
	}
	if f.retry < 0 {
		return opts, usagef("--retry %d: must not be negative", f.retry)
	}
	if f.retryDelay < 0 {
		return opts, usagef("--retry-delay %s: must not be negative", f.retryDelay)
	}
	opts.RetryCount, opts.RetryDelay = f.retry, f.retryDelay
	opts.LayerParallelism = f.jobs
	opts.BlobCacheDir = f.blobCache
	if cmd.Flags().Changed("timestamp") {
		if f.timestamp < 0 {
			return opts, usagef("--timestamp %d: must not be negative", f.timestamp)
		}
		t := time.Unix(f.timestamp, 0).UTC()
		opts.HistoryTimestamp = &t
	}
	if err := f.reproducibility(cmd, &opts); err != nil {
		return opts, err
	}
	if f.squash && f.squashNewLayers {
		return opts, usagef("--squash and --squash-new-layers: give one")
	}
	if f.emptyLayer && (f.squash || f.squashNewLayers) {
		return opts, usagef("--empty-layer with a squash: a squash writes a layer")
	}
	opts.Squash, opts.SquashNewLayers, opts.OmitHistory, opts.EmptyLayer = f.squash, f.squashNewLayers, f.omitHistory, f.emptyLayer
	opts.UnsetEnv, opts.UnsetLabels = f.unsetEnv, f.unsetLabel
	if opts.Annotations, err = parseKeyValues("annotation", f.annotations); err != nil {
		return opts, err
	}
	if opts.LayerAnnotations, err = parseKeyValues("layer-annotation", f.layerAnnotations); err != nil {
		return opts, err
	}
	if opts.ManifestType == docker.V2S2MediaTypeManifest && (len(opts.Annotations) > 0 || len(opts.LayerAnnotations) > 0) {
		return opts, usagef("--annotation and --layer-annotation need --format oci: Docker v2s2 manifests hold no annotations")
	}
	opts.IIDFile = f.iidFile
	opts.SignBy, opts.SignBySigstorePrivateKeyFile, opts.SignByOpenPGPKeyFile = f.signBy, f.signBySigstoreKey, f.signByOpenPGPKey
	if f.signBy != "" && f.signByOpenPGPKey != "" {
		return opts, usagef("--sign-by and --sign-by-openpgp-key: give one")
	}
	if f.signPassphrase != "" {
		data, err := os.ReadFile(f.signPassphrase)
		if err != nil {
			return opts, usagef("--sign-passphrase-file: %v", err)
		}
		pass := strings.TrimRight(string(data), "\r\n")
		opts.SignPassphrase, opts.SignSigstorePrivateKeyPassphrase = pass, []byte(pass)
	}
	sys, err := f.registry.systemContext()
	if err != nil {
		return opts, err
	}
	opts.SystemContext = sys
	opts.SignaturePolicyPath = f.registry.signaturePolicy
	return opts, nil
}

// reproducibility sets the options of a reproducible commit:
// --source-date-epoch, else $SOURCE_DATE_EPOCH, and --rewrite-timestamps.
func (f *commitFlags) reproducibility(cmd *cobra.Command, opts *bricklayer.CommitOptions) error {
	fs := cmd.Flags()
	epoch, set := f.sourceDateEpoch, fs.Changed("source-date-epoch")
	if env := os.Getenv("SOURCE_DATE_EPOCH"); !set && env != "" && !fs.Changed("timestamp") {
		n, err := strconv.ParseInt(env, 10, 64)
		if err != nil || n < 0 {
			return usagef("$SOURCE_DATE_EPOCH %q: want seconds since the epoch, not negative", env)
		}
		epoch, set = n, true
	}
	if set {
		if epoch < 0 {
			return usagef("--source-date-epoch %d: must not be negative", epoch)
		}
		if fs.Changed("timestamp") {
			return usagef("--timestamp and --source-date-epoch: give one")
		}
		t := time.Unix(epoch, 0).UTC()
		opts.SourceDateEpoch = &t
	}
	if f.rewriteTimestamps && opts.SourceDateEpoch == nil && opts.HistoryTimestamp == nil {
		return usagef("--rewrite-timestamps needs --source-date-epoch, $SOURCE_DATE_EPOCH or --timestamp")
	}
	opts.RewriteTimestamps = f.rewriteTimestamps
	return nil
}

// parseKeyValues parses repeated KEY=VALUE flag values.
func parseKeyValues(flag string, values []string) (map[string]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, v := range values {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return nil, usagef("--%s %q: want KEY=VALUE", flag, v)
		}
		m[k] = val
	}
	return m, nil
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
