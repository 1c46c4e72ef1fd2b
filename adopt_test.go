package bricklayer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestAdoptBuildahState opens containers made by "another tool" with
// buildah's state file beside them: a valid one gives the builder its
// config (both formats, the Docker one made from the OCI one when buildah
// kept none) and its history notes; an unreadable one, or one of another
// tool, is passed over with a warning, and the container opened with its
// image's config. (interop's TestCommitBuildahContainer does the same with
// buildah itself.)
func TestAdoptBuildahState(t *testing.T) {
	store := newTestStore(t)
	for _, tc := range []struct {
		name, state string
		wantEnv     []string
		warns       string
	}{
		{"valid", `{"type":"buildah 0.0.1","ociv1":{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],"Cmd":["/x"]}},` +
			`"docker":{"config":{"Env":["A=1"],"Cmd":["/x"]}},"created-by":"by","history-comment":"note",` +
			`"annotations":{"an":"av","org.opencontainers.image.base.name":""}}`, []string{"A=1"}, ""},
		{"no-docker", `{"type":"buildah 0.0.1","ociv1":{"architecture":"amd64","os":"linux","config":{"Env":["B=2"]}}}`, []string{"B=2"}, ""},
		{"garbage", `{"type":`, nil, "parsing buildah's state"},
		{"other-tool", `{"type":"other 1","ociv1":{"config":{"Env":["C=3"]}}}`, nil, `of type "other 1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctr, err := store.CreateContainer("", []string{"adopt-" + tc.name}, "", "", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			dir, err := store.ContainerDirectory(ctr.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, buildahStateFile), []byte(tc.state), 0o600); err != nil {
				t.Fatal(err)
			}
			warnings := captureWarnings(t)
			b, err := OpenBuilder(store, ctr.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got := b.state.OCIConfig.Config.Env; !slices.Equal(got, tc.wantEnv) {
				t.Errorf("OCI Env %q, want %q", got, tc.wantEnv)
			}
			if dc := b.state.DockerConfig.Config; tc.wantEnv != nil && (dc == nil || !slices.Equal(dc.Env, tc.wantEnv)) {
				t.Errorf("Docker config %+v, want Env %q", dc, tc.wantEnv)
			}
			w := warnings.take()
			if tc.warns == "" && len(w) != 0 || tc.warns != "" && (len(w) != 1 || !strings.Contains(w[0], tc.warns) || !strings.Contains(w[0], "adopt-"+tc.name)) {
				t.Errorf("warnings %q, want one saying %q naming the container", w, tc.warns)
			}
			if tc.name == "valid" {
				if b.state.CreatedBy != "by" || b.state.HistoryNote != "note" || b.state.Annotations["an"] != "av" || len(b.state.Annotations) != 1 {
					t.Errorf("created by %q, note %q, annotations %v; want buildah's, without the empty base-image ones", b.state.CreatedBy, b.state.HistoryNote, b.state.Annotations)
				}
			}
		})
	}
}
