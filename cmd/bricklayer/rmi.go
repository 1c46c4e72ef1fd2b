package main

import (
	"errors"
	"fmt"
	"slices"

	"github.com/spf13/cobra"
	"go.podman.io/storage"
)

func (a *app) rmiCommand() *cobra.Command {
	var all, force bool
	cmd := &cobra.Command{
		Use:   "rmi IMAGE... | --all",
		Short: "Remove images from the store",
		Long: `Remove images from the store. An image named by one of several names only
loses that name; by ID, or by its last name, it is removed with the layers no
other image uses. An image that containers were made from is kept unless
--force, which removes those containers first.`,
		Args: namesOrAll(&all, "image names or IDs,"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			store, err := a.openStore()
			if err != nil {
				return err
			}
			if all {
				imgs, err := listImages(store)
				if err != nil {
					return err
				}
				for _, img := range imgs {
					args = append(args, img.ID)
				}
			}
			return each(args, true, func(name string) error {
				return removeImage(store, name, force)
			})
		}),
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove every image")
	cmd.Flags().BoolVarP(&force, "force", "f", false, "also remove the containers made from the image")
	cmd.ValidArgsFunction = a.completeImages(-1)
	return cmd
}

// removeImage untags or removes one image.
func removeImage(store storage.Store, name string, force bool) error {
	img, err := findImage(store, name)
	if err != nil {
		return err
	}
	byName := ""
	for _, n := range img.Names {
		if n == name {
			byName = n
		} else if named, err := localName(name); err == nil && named.String() == n {
			byName = n
		}
	}
	if byName != "" && len(img.Names) > 1 {
		if err := store.RemoveNames(img.ID, []string{byName}); err != nil {
			return fmt.Errorf("removing name %s from image %s: %w", byName, img.ID, err)
		}
		return nil
	}
	ctrs, err := listContainers(store)
	if err != nil {
		return err
	}
	var users []string
	for _, c := range ctrs {
		if c.ImageID == img.ID {
			users = append(users, c.ID)
		}
	}
	if len(users) > 0 && !force {
		var names []string
		for _, id := range users {
			if c, err := store.Container(id); err == nil && len(c.Names) > 0 {
				names = append(names, c.Names[0])
			} else {
				names = append(names, shortID(id))
			}
		}
		slices.Sort(names)
		return fmt.Errorf("removing image %s: containers %v were made from it (remove them, or use --force)", shortID(img.ID), names)
	}
	for _, id := range users {
		if _, err := store.Unmount(id, true); err != nil && !errors.Is(err, storage.ErrContainerUnknown) {
			return fmt.Errorf("unmounting container %s: %w", id, err)
		}
		if err := store.DeleteContainer(id); err != nil {
			return fmt.Errorf("removing container %s made from image %s: %w", id, shortID(img.ID), err)
		}
	}
	if _, err := store.DeleteImage(img.ID, true); err != nil {
		return fmt.Errorf("removing image %s: %w", shortID(img.ID), err)
	}
	return nil
}
