package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
	"go.podman.io/image/v5/docker/reference"
)

// imageSummary is one row of "images --json".
type imageSummary struct {
	ID      string    `json:"id"`
	Names   []string  `json:"names"`
	Digest  string    `json:"digest,omitempty"`
	Created time.Time `json:"created"`
	Size    int64     `json:"size"`
}

func (a *app) imagesCommand() *cobra.Command {
	var f listFlags
	cmd := &cobra.Command{
		Use:   "images",
		Short: "List the images in the store",
		Args:  cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			store, err := a.openStore()
			if err != nil {
				return err
			}
			imgs, err := listImages(store)
			if err != nil {
				return err
			}
			rows := make([]imageSummary, 0, len(imgs))
			for _, img := range imgs {
				size, err := store.ImageSize(img.ID)
				if err != nil {
					size = -1
				}
				rows = append(rows, imageSummary{ID: img.ID, Names: img.Names, Digest: img.Digest.String(), Created: img.Created, Size: size})
			}
			return printList(cmd.OutOrStdout(), &f, rows, func(r imageSummary) string { return r.ID },
				"REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE",
				func(w io.Writer, r imageSummary) {
					id := f.id(r.ID)
					created := units.HumanDuration(time.Since(r.Created)) + " ago"
					size := "?"
					if r.Size >= 0 {
						size = units.BytesSize(float64(r.Size))
					}
					names := r.Names
					if len(names) == 0 {
						names = []string{""}
					}
					for _, n := range names {
						repo, tag := splitName(n)
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", repo, tag, id, created, size)
					}
				})
		}),
	}
	f.register(cmd, "image")
	return cmd
}

// splitName splits an image name into repository and tag ("<none>" for
// what is missing).
func splitName(name string) (repo, tag string) {
	if name == "" {
		return "<none>", "<none>"
	}
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return name, "<none>"
	}
	repo, tag = named.Name(), "<none>"
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	} else if d, ok := named.(reference.Digested); ok {
		tag = d.Digest().String()
	}
	return strings.TrimSpace(repo), tag
}
