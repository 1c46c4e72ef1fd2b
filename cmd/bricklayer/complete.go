package main

import (
	"github.com/spf13/cobra"
	"go.podman.io/storage"
)

// completer is a cobra ValidArgsFunction.
type completer = func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective)

// completeContainers completes container names for the first n arguments
// (all of them when n < 0).
func (a *app) completeContainers(n int) completer {
	return a.completeNames(n, func(store storage.Store) ([]string, error) {
		ctrs, err := store.Containers()
		var names []string
		for _, c := range ctrs {
			names = append(names, c.Names...)
		}
		return names, err
	})
}

// completeImages completes image names for the first n arguments (all of
// them when n < 0).
func (a *app) completeImages(n int) completer {
	return a.completeNames(n, func(store storage.Store) ([]string, error) {
		imgs, err := store.Images()
		var names []string
		for _, img := range imgs {
			names = append(names, img.Names...)
		}
		return names, err
	})
}

// completeNames completes the first n arguments (all of them when n < 0)
// with the names that list finds in the store.
func (a *app) completeNames(n int, list func(storage.Store) ([]string, error)) completer {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if n >= 0 && len(args) >= n {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		store, err := a.openStore()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		names, err := list(store)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
