package main

import (
	"github.com/bricklayer/bricklayer"
	"github.com/spf13/cobra"
)

func (a *app) rmCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:     "rm CONTAINER... | --all",
		Aliases: []string{"delete"},
		Short:   "Remove working containers",
		Long:    "Remove working containers, their layers and their state. Images are kept.",
		Args:    namesOrAll(&all, "container names"),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			store, err := a.openStore()
			if err != nil {
				return err
			}
			if all {
				ctrs, err := listContainers(store)
				if err != nil {
					return err
				}
				for _, c := range ctrs {
					args = append(args, c.ID)
				}
			}
			return eachContainer(store, args, true, (*bricklayer.Builder).Delete)
		}),
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove every container in the store")
	cmd.ValidArgsFunction = a.completeContainers(-1)
	return cmd
}
