package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
)

// containerSummary is one row of "containers --json".
type containerSummary struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Names     []string  `json:"names"`
	ImageID   string    `json:"image_id,omitempty"`
	ImageName string    `json:"image_name,omitempty"`
	Created   time.Time `json:"created"`
}

func (a *app) containersCommand() *cobra.Command {
	var f listFlags
	cmd := &cobra.Command{
		Use:     "containers",
		Aliases: []string{"ps"},
		Short:   "List the containers in the store",
		Long: `List the containers in the store: bricklayer's working containers and, in
the system's containers storage, those of buildah and podman too.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			store, err := a.openStore()
			if err != nil {
				return err
			}
			ctrs, err := listContainers(store)
			if err != nil {
				return err
			}
			rows := make([]containerSummary, 0, len(ctrs))
			for _, c := range ctrs {
				r := containerSummary{ID: c.ID, Names: c.Names, ImageID: c.ImageID, Created: c.Created}
				if len(c.Names) > 0 {
					r.Name = c.Names[0]
				}
				if c.ImageID != "" {
					if img, err := store.Image(c.ImageID); err == nil && len(img.Names) > 0 {
						r.ImageName = img.Names[0]
					}
				}
				rows = append(rows, r)
			}
			return printList(cmd.OutOrStdout(), &f, rows, func(r containerSummary) string { return r.ID },
				"CONTAINER ID\tIMAGE ID\tIMAGE NAME\tCONTAINER NAME",
				func(w io.Writer, r containerSummary) {
					// A container from scratch has no image: its image's
					// name is "scratch", as buildah shows it.
					imageName := orNone(r.ImageName, "")
					if r.ImageID == "" {
						imageName = "scratch"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", f.id(r.ID), orNone(f.id(r.ImageID), ""), imageName, r.Name)
				})
		}),
	}
	f.register(cmd, "container")
	return cmd
}

// orNone returns s, or def when s is empty; an empty def is "<none>".
func orNone(s, def string) string {
	if s != "" {
		return s
	}
	if def == "" {
		return "<none>"
	}
	return def
}
