package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) rmCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:     "rm CONTAINER... | --all",
		Aliases: []string{"delete"},
		Short:   "Remove working containers",
		Long:    "Remove working containers, their layers and their state. Images are kept.",
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
					args = append(args, c.ID)
				}
			}
			var errs []error
			for _, name := range args {
				b, err := openContainer(store, name)
				if err == nil {
					err = b.Delete()
				}
				if err != nil {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		}),
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "remove every container in the store")
	cmd.ValidArgsFunction = a.completeContainers(-1)
	return cmd
}
