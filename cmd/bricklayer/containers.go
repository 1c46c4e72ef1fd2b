package main

import (
	"fmt"
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
	var quiet, asJSON, noTrunc bool
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
			ctrs, err := store.Containers()
			if err != nil {
				return fmt.Errorf("listing the containers in %s: %w", store.GraphRoot(), err)
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
			out := cmd.OutOrStdout()
			switch {
			case asJSON:
				return printJSON(out, rows)
			case quiet:
				for _, r := range rows {
					fmt.Fprintln(out, r.ID)
				}
				return nil
			}
			tw := newTable(out)
			fmt.Fprintln(tw, "CONTAINER ID\tIMAGE ID\tIMAGE NAME\tCONTAINER NAME")
			for _, r := range rows {
				id, imageID := r.ID, r.ImageID
				if !noTrunc {
					id, imageID = shortID(id), shortID(imageID)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", id, orNone(imageID, "scratch"), orNone(r.ImageName, ""), r.Name)
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the container IDs")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "print full IDs")
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
