package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) mountCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mount [CONTAINER...]",
		Short: "Mount working containers' root filesystems and print where",
		Long: `Mount each CONTAINER's root filesystem and print its path; with several
containers, print "NAME PATH" lines. Without arguments, list the mounted
working containers. Each mount must be undone with umount.`,
		Example: `  cp -a ./rootfs/. "$(bricklayer mount work)"/ && bricklayer umount work`,
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			store, err := a.openStore()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(args) == 0 {
				ctrs, err := store.Containers()
				if err != nil {
					return fmt.Errorf("listing the containers in %s: %w", store.GraphRoot(), err)
				}
				for _, c := range ctrs {
					b, err := openContainer(store, c.ID)
					if err != nil || b.MountPoint() == "" {
						continue
					}
					fmt.Fprintf(out, "%s %s\n", b.ContainerName(), b.MountPoint())
				}
				return nil
			}
			for _, name := range args {
				b, err := openContainer(store, name)
				if err != nil {
					return err
				}
				mp, err := b.Mount()
				if err != nil {
					return err
				}
				if len(args) == 1 {
					fmt.Fprintln(out, mp)
				} else {
					fmt.Fprintf(out, "%s %s\n", b.ContainerName(), mp)
				}
			}
			return nil
		}),
	}
	cmd.ValidArgsFunction = a.completeContainers(-1)
	return cmd
}

func (a *app) umountCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:     "umount CONTAINER... | --all",
		Aliases: []string{"unmount"},
		Short:   "Unmount working containers' root filesystems",
		Args: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return errors.New("give container names or --all, not both or neither")
			}
			return nil
		},
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			store, err := a.openStore()
			if err != nil {
				return err
			}
			if all {
				ctrs, err := store.Containers()
				if err != nil {
					return fmt.Errorf("listing the containers in %s: %w", store.GraphRoot(), err)
				}
				for _, c := range ctrs {
					if b, err := openContainer(store, c.ID); err == nil && b.MountPoint() != "" {
						args = append(args, c.ID)
					}
				}
			}
			for _, name := range args {
				b, err := openContainer(store, name)
				if err != nil {
					return err
				}
				if err := b.Unmount(); err != nil {
					return err
				}
			}
			return nil
		}),
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "unmount every mounted working container")
	cmd.ValidArgsFunction = a.completeContainers(-1)
	return cmd
}
