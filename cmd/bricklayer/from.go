package main

import (
	"errors"
	"fmt"

	"github.com/bricklayer/bricklayer"
	"github.com/spf13/cobra"
	"go.podman.io/storage"
)

func (a *app) fromCommand() *cobra.Command {
	var (
		name     string
		quiet    bool
		registry registryFlags
	)
	cmd := &cobra.Command{
		Use:   "from IMAGE|scratch",
		Short: "Create a working container from an image, or from nothing",
		Long: `Create a working container and print its name.

IMAGE is "scratch" for an empty container, the name or ID of an image in the
store (a bare NAME is looked up as localhost/NAME:latest too), or a
containers/image reference such as docker://docker.io/library/alpine:latest
or oci:DIR:TAG, which is pulled into the store first.`,
		Example: `  bricklayer from scratch
  bricklayer from --name web docker://docker.io/library/alpine:3.20
  bricklayer from myapp`,
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
			from := resolveFrom(store, args[0])
			b, err := bricklayer.NewBuilder(cmd.Context(), store, bricklayer.BuilderOptions{
				FromImage:           from,
				Container:           name,
				SystemContext:       sys,
				SignaturePolicyPath: registry.signaturePolicy,
				ReportWriter:        progressOutput(cmd, quiet),
			})
			if errors.Is(err, bricklayer.ErrImageNotFound) {
				if _, isRef, _ := transportRef(from); !isRef {
					return fmt.Errorf("%w (to pull it from a registry, write docker://%s)", err, args[0])
				}
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), b.ContainerName())
			return nil
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "name of the working container (default: IMAGE-working-container)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "show no pull progress")
	registry.register(cmd.Flags(), &a.storage)
	cmd.ValidArgsFunction = a.completeImages(1)
	return cmd
}

// resolveFrom turns a short local name into the name it has in the store,
// so that "from NAME" finds what "commit CONTAINER NAME" wrote. Anything else
// is left for the library to resolve.
func resolveFrom(store storage.Store, from string) string {
	if from == "" || from == bricklayer.Scratch {
		return from
	}
	if _, isRef, _ := transportRef(from); isRef {
		return from
	}
	if _, err := store.Image(from); err == nil {
		return from
	}
	if named, err := localName(from); err == nil {
		if _, err := store.Image(named.String()); err == nil {
			return named.String()
		}
	}
	return from
}
