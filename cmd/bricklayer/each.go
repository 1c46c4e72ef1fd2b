package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/bricklayer/bricklayer"
	"github.com/spf13/cobra"
	is "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
)

// This file holds what several commands do alike: open a working container,
// list the store, go over the arguments, print a listing.

// openBuilder opens the store and the working container called name.
func (a *app) openBuilder(name string) (*bricklayer.Builder, error) {
	store, err := a.openStore()
	if err != nil {
		return nil, err
	}
	return openContainer(store, name)
}

// listContainers lists the containers in store, with an error that names
// the store.
func listContainers(store storage.Store) ([]storage.Container, error) {
	ctrs, err := store.Containers()
	if err != nil {
		return nil, fmt.Errorf("listing the containers in %s: %w", store.GraphRoot(), err)
	}
	return ctrs, nil
}

// listImages lists the images in store, with an error that names the store.
func listImages(store storage.Store) ([]storage.Image, error) {
	imgs, err := store.Images()
	if err != nil {
		return nil, fmt.Errorf("listing the images in %s: %w", store.GraphRoot(), err)
	}
	return imgs, nil
}

// mountedContainers opens the working containers in store that are
// mounted. Containers that do not open as working containers (those of other
// tools) are left out.
func mountedContainers(store storage.Store) ([]*bricklayer.Builder, error) {
	ctrs, err := listContainers(store)
	if err != nil {
		return nil, err
	}
	var mounted []*bricklayer.Builder
	for _, c := range ctrs {
		if b, err := openContainer(store, c.ID); err == nil && b.MountPoint() != "" {
			mounted = append(mounted, b)
		}
	}
	return mounted, nil
}

// imageRef refers to the image with ID id in store.
func imageRef(store storage.Store, id string) (types.ImageReference, error) {
	ref, err := is.Transport.NewStoreReference(store, nil, id)
	if err != nil {
		return nil, fmt.Errorf("referring to image %s: %w", id, err)
	}
	return ref, nil
}

// namesOrAll accepts arguments, or none with *all set, but not both or
// neither; what says what the arguments are ("container names").
func namesOrAll(all *bool, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if *all == (len(args) > 0) {
			return fmt.Errorf("give %s or --all, not both or neither", what)
		}
		return nil
	}
}

// each calls fn for each name in order. With keepGoing it goes on after a
// failure and returns every error joined (nil when there is none); without,
// it returns the first error as it is.
func each(names []string, keepGoing bool, fn func(name string) error) error {
	var errs []error
	for _, name := range names {
		if err := fn(name); err != nil {
			if !keepGoing {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// eachContainer opens each named working container in store and calls fn on
// it, going on after failures as each does.
func eachContainer(store storage.Store, names []string, keepGoing bool, fn func(b *bricklayer.Builder) error) error {
	return each(names, keepGoing, func(name string) error {
		b, err := openContainer(store, name)
		if err != nil {
			return err
		}
		return fn(b)
	})
}

// listFlags are the output flags of the listing commands.
type listFlags struct {
	quiet, asJSON, noTrunc bool
}

// register adds the flags to cmd; what names the listed objects
// ("container", "image").
func (f *listFlags) register(cmd *cobra.Command, what string) {
	cmd.Flags().BoolVarP(&f.quiet, "quiet", "q", false, "print only the "+what+" IDs")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&f.noTrunc, "no-trunc", false, "print full IDs")
}

// id returns id, shortened unless --no-trunc.
func (f *listFlags) id(id string) string {
	if f.noTrunc {
		return id
	}
	return shortID(id)
}

// printList prints rows as the flags ask: as a JSON array, as one ID a
// line, or as a table of header and the lines that row writes for each.
func printList[T any](out io.Writer, f *listFlags, rows []T, id func(T) string, header string, row func(w io.Writer, r T)) error {
	switch {
	case f.asJSON:
		return printJSON(out, rows)
	case f.quiet:
		for _, r := range rows {
			fmt.Fprintln(out, id(r))
		}
		return nil
	}
	tw := newTable(out)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		row(tw, r)
	}
	return tw.Flush()
}
