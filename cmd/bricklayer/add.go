package main

import (
	"errors"
	"fmt"

	"github.com/bricklayer/bricklayer"
	"github.com/spf13/cobra"
)

// addCommand makes "add" (which extracts local tar archives) or "copy"
// (which never does).
func (a *app) addCommand(name string) *cobra.Command {
	var opts bricklayer.AddOptions
	short, long := "Copy files into a working container", "Copy the files and directories SRC into the working container at DEST.\nA directory's contents are copied, not the directory itself."
	if name == "add" {
		short = "Copy files into a working container, extracting local archives"
		long = "Copy SRC into the working container at DEST, as copy does, but extract\nlocal tar archives (compressed or not) into DEST instead of copying them."
	}
	cmd := &cobra.Command{
		Use:     name + " CONTAINER SRC... DEST",
		Short:   short,
		Long:    long,
		Example: fmt.Sprintf("  bricklayer %s --chown 1000:1000 --chmod 755 work ./bin/app /usr/local/bin/", name),
		Args:    cobra.MinimumNArgs(3),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			b, err := a.openBuilder(args[0])
			if err != nil {
				return err
			}
			srcs, dest := args[1:len(args)-1], args[len(args)-1]
			if name == "add" {
				err = b.Add(cmd.Context(), dest, opts, srcs...)
			} else {
				err = b.Copy(cmd.Context(), dest, opts, srcs...)
			}
			if errors.Is(err, bricklayer.ErrInvalidChmod) || errors.Is(err, bricklayer.ErrInvalidChown) {
				return usagef("%v", err) // a flag's value that does not parse
			}
			if err != nil {
				return err
			}
			return b.Save()
		}),
	}
	cmd.Flags().StringVar(&opts.Chown, "chown", "", "owner of the copied files: UID[:GID] or USER[:GROUP] (names looked up in the container)")
	cmd.Flags().StringVar(&opts.Chmod, "chmod", "", "mode of the copied files, in octal")
	cmd.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return a.completeContainers(1)(cmd, args, toComplete)
		}
		return nil, cobra.ShellCompDirectiveDefault // files
	}
	return cmd
}
