package main

import (
	"github.com/spf13/cobra"
)

// completer is a cobra ValidArgsFunction.
type completer = func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective)

// completeContainers completes container names for the first n arguments
// (all of them when n < 0).
func (a *app) completeContainers(n int) completer {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if n >= 0 && len(args) >= n {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		store, err := a.openStore()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		ctrs, err := store.Containers()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for _, c := range ctrs {
			names = append(names, c.Names...)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeImages completes image names for the first n arguments (all of
// them when n < 0).
func (a *app) completeImages(n int) completer {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if n >= 0 && len(args) >= n {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		store, err := a.openStore()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		imgs, err := store.Images()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for _, img := range imgs {
			names = append(names, img.Names...)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
