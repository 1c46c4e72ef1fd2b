package main

import (
	"fmt"
	"io"

	"github.com/bricklayer/bricklayer"
	digest "github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"
	"go.podman.io/image/v5/types"
)

// verifyReport is what "verify --json" prints.
type verifyReport struct {
	Reference      string          `json:"reference"`
	ManifestDigest digest.Digest   `json:"manifest_digest"`
	ManifestType   string          `json:"manifest_type"`
	Images         int             `json:"images"`
	Blobs          int             `json:"blobs"`
	OK             bool            `json:"ok"`
	Problems       []verifyProblem `json:"problems"`
}

type verifyProblem struct {
	Instance digest.Digest `json:"instance,omitempty"`
	Object   string        `json:"object"`
	Digest   digest.Digest `json:"digest,omitempty"`
	Check    string        `json:"check"`
	Want     string        `json:"want"`
	Got      string        `json:"got"`
}

func (a *app) verifyCommand() *cobra.Command {
	var (
		asJSON   bool
		registry registryFlags
	)
	cmd := &cobra.Command{
		Use:   "verify IMAGE",
		Short: "Read an image back and check every digest, diffID and size",
		Long: `Read an image back through containers/image and recompute what its manifest and
config claim: the manifest's digest where the reference names one, every blob's
digest and size, every layer's diffID after decompressing it, the config's
digest, and the counts of diff_ids and history entries. A manifest list or
index has each of its images checked.

IMAGE is a transport reference (oci:DIR:TAG, docker://..., dir:DIR, ...) or
an image in the store. Each mismatch is printed on a line of its own; the exit
status is 1 when there is any.`,
		Example: `  bricklayer verify oci:./out:latest
  bricklayer verify myapp
  bricklayer verify --json docker://localhost:5000/app:1`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			sys, err := registry.systemContext()
			if err != nil {
				return err
			}
			store, err := a.openStore()
			if err != nil {
				return err
			}
			name := args[0]
			ref, ok, err := transportRef(name)
			if err != nil {
				return err
			}
			if !ok {
				img, err := findImage(store, name)
				if err != nil {
					return err
				}
				if ref, err = imageRef(store, img.ID); err != nil {
					return err
				}
			}
			return verify(cmd, name, ref, sys, asJSON)
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	registry.register(cmd.Flags(), &a.storage)
	cmd.ValidArgsFunction = a.completeImages(1)
	return cmd
}

// verify verifies ref, prints the report and fails when it names any
// problem.
func verify(cmd *cobra.Command, name string, ref types.ImageReference, sys *types.SystemContext, asJSON bool) error {
	report, err := bricklayer.Verify(cmd.Context(), ref, sys)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if asJSON {
		r := verifyReport{
			Reference: name, ManifestDigest: report.ManifestDigest, ManifestType: report.ManifestType,
			Images: report.Images, Blobs: report.Blobs, OK: report.OK(), Problems: []verifyProblem{},
		}
		for _, p := range report.Problems {
			r.Problems = append(r.Problems, verifyProblem(p))
		}
		if err := printJSON(out, r); err != nil {
			return err
		}
	} else {
		printVerifyReport(out, name, report)
	}
	if !report.OK() {
		return fmt.Errorf("%s: %s found", name, plural(len(report.Problems), "problem"))
	}
	return nil
}

// printVerifyReport prints one line per problem, then a summary.
func printVerifyReport(w io.Writer, name string, report bricklayer.VerifyReport) {
	for _, p := range report.Problems {
		fmt.Fprintf(w, "%s: %s\n", name, p)
	}
	status := "OK"
	if !report.OK() {
		status = plural(len(report.Problems), "problem")
	}
	fmt.Fprintf(w, "%s: manifest %s, %s, %s read: %s\n", name, report.ManifestDigest, plural(report.Images, "image"), plural(report.Blobs, "blob"), status)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
