package main

import (
	"fmt"

	"github.com/bricklayer/bricklayer"
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
				mounted, err := mountedContainers(store)
				for _, b := range mounted {
					fmt.Fprintf(out, "%s %s\n", b.ContainerName(), b.MountPoint())
				}
				return err
			}
			return eachContainer(store, args, false, func(b *bricklayer.Builder) error {
				mp, err := b.Mount()
				if err != nil {
					return err
				}
				if len(args) == 1 {
					fmt.Fprintln(out, mp)
				} else {
					fmt.Fprintf(out, "%s %s\n", b.ContainerName(), mp)
				}
				return nil
			})
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
		Args:    namesOrAll(&all, "container names"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			store, err := a.openStore()
			if err != nil {
				return err
			}
			if all {
				mounted, err := mountedContainers(store)
				if err != nil {
					return err
				}
				for _, b := range mounted {
					args = append(args, b.ContainerID())
				}
			}
			return eachContainer(store, args, false, (*bricklayer.Builder).Unmount)
		}),
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "unmount every mounted working container")
	cmd.ValidArgsFunction = a.completeContainers(-1)
	return cmd
}
