package bricklayer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bricklayer/bricklayer/docker"
)

// changeCase applies changes to a scratch builder prepared by before and
// compares the config with what "docker commit --change" gives for the
// same changes (noted where podman differs).
type changeCase struct {
	name    string
	before  func(b *Builder)
	changes []string
	check   func(t *testing.T, b *Builder)
	errIs   []error // the batch must fail with these, and change nothing
	errSub  string
}

var changeCases = []changeCase{
	{name: "CMD exec form", changes: []string{`CMD ["/bin/app", "-v"]`},
		check: func(t *testing.T, b *Builder) { equal(t, "Cmd", b.Cmd(), []string{"/bin/app", "-v"}) }},
	{name: "CMD shell form runs /bin/sh -c", changes: []string{`cmd echo "$HOME" && exit 1`},
		check: func(t *testing.T, b *Builder) {
			equal(t, "Cmd", b.Cmd(), []string{"/bin/sh", "-c", `echo "$HOME" && exit 1`})
		}},
	{name: "CMD shell form runs the SHELL", changes: []string{`SHELL ["/bin/bash", "-eo", "pipefail", "-c"]`, `CMD make all`},
		check: func(t *testing.T, b *Builder) {
			equal(t, "Cmd", b.Cmd(), []string{"/bin/bash", "-eo", "pipefail", "-c", "make all"})
			equal(t, "Shell", b.Shell(), []string{"/bin/bash", "-eo", "pipefail", "-c"})
		}},
	{name: "shell form on Windows runs cmd /S /C", before: func(b *Builder) { b.SetOS("windows") }, changes: []string{`ENTRYPOINT app.exe`},
		check: func(t *testing.T, b *Builder) {
			equal(t, "Entrypoint", b.Entrypoint(), []string{"cmd", "/S", "/C", "app.exe"})
		}},
	{name: "CMD [] empties the command", before: func(b *Builder) { b.SetCmd([]string{"x"}) }, changes: []string{`CMD []`},
		check: func(t *testing.T, b *Builder) { equal(t, "Cmd", b.Cmd(), []string{}) }},
	{name: "ENTRYPOINT resets an earlier CMD", before: func(b *Builder) { b.SetCmd([]string{"old"}) }, changes: []string{`ENTRYPOINT ["/init"]`},
		check: func(t *testing.T, b *Builder) {
			equal(t, "Entrypoint", b.Entrypoint(), []string{"/init"})
			equal(t, "Cmd (podman keeps it)", b.Cmd(), []string(nil))
		}},
	{name: "ENTRYPOINT keeps a CMD of the same batch", changes: []string{`CMD ["serve"]`, `ENTRYPOINT /init`},
		check: func(t *testing.T, b *Builder) {
			equal(t, "Entrypoint", b.Entrypoint(), []string{"/bin/sh", "-c", "/init"})
			equal(t, "Cmd", b.Cmd(), []string{"serve"})
		}},
	{name: "ENV pairs, quotes and expansion", before: func(b *Builder) { b.SetEnv("PATH", "/usr/bin"); b.SetEnv("a", "0") },
		changes: []string{`ENV PATH=$PATH:/opt/bin GREETING="hello world" a=1 b=$a`, `ENV c=$a`, `env LEGACY some value`},
		check: func(t *testing.T, b *Builder) {
			equal(t, "Env", b.Env(), []string{"PATH=/usr/bin:/opt/bin", "a=1", "GREETING=hello world", "b=0", "c=1", "LEGACY=some value"})
		}},
	{name: "LABEL adds", before: func(b *Builder) { b.SetLabel("old", "1") }, changes: []string{`LABEL version="1.0" "com.example.vendor"="ACME Inc"`, `LABEL old=2`},
		check: func(t *testing.T, b *Builder) {
			equal(t, "Labels", b.Labels(), map[string]string{"old": "2", "version": "1.0", "com.example.vendor": "ACME Inc"})
		}},
	{name: "EXPOSE adds ports and ranges", before: func(b *Builder) { _ = b.SetPort("22") }, changes: []string{`EXPOSE 80 53/udp`, `EXPOSE 8000-8001/TCP`},
		check: func(t *testing.T, b *Builder) {
			equal(t, "Ports", b.Ports(), []string{"22/tcp", "53/udp", "80/tcp", "8000/tcp", "8001/tcp"})
		}},
	{name: "VOLUME adds, JSON or words", changes: []string{`VOLUME ["/data", "/var/my log"]`, `VOLUME /cache /tmp/x`},
		check: func(t *testing.T, b *Builder) {
			equal(t, "Volumes", b.Volumes(), []string{"/cache", "/data", "/tmp/x", "/var/my log"})
		}},
	{name: "WORKDIR joins relative paths", changes: []string{`WORKDIR /srv`, `WORKDIR app`, `WORKDIR ../lib//x/`},
		check: func(t *testing.T, b *Builder) { equal(t, "WorkDir", b.WorkDir(), "/srv/lib/x") }},
	{name: "WORKDIR relative to nothing", changes: []string{`WORKDIR rel`},
		check: func(t *testing.T, b *Builder) { equal(t, "WorkDir", b.WorkDir(), "/rel") }},
	{name: "WORKDIR expands", before: func(b *Builder) { b.SetEnv("APP", "/opt/app") }, changes: []string{`WORKDIR ${APP}/bin`},
		check: func(t *testing.T, b *Builder) { equal(t, "WorkDir", b.WorkDir(), "/opt/app/bin") }},
	{name: "USER", changes: []string{`USER app:app`},
		check: func(t *testing.T, b *Builder) { equal(t, "User", b.User(), "app:app") }},
	{name: "STOPSIGNAL kept as written", changes: []string{`STOPSIGNAL sigquit`},
		check: func(t *testing.T, b *Builder) { equal(t, "StopSignal (podman stores 3)", b.StopSignal(), "sigquit") }},
	{name: "MAINTAINER sets the author", changes: []string{`MAINTAINER Jane Doe <jane@example.com>`},
		check: func(t *testing.T, b *Builder) { equal(t, "Author", b.Author(), "Jane Doe <jane@example.com>") }},
	{name: "ONBUILD appends the trigger as written", before: func(b *Builder) { b.AddOnBuild("RUN first") },
		changes: []string{`ONBUILD ADD . /app/src`, `onbuild run make -C /app/src`},
		check: func(t *testing.T, b *Builder) {
			equal(t, "OnBuild", b.OnBuild(), []string{"RUN first", "ADD . /app/src", "run make -C /app/src"})
		}},
	{name: "HEALTHCHECK replaces", before: func(b *Builder) {
		b.SetHealthcheck(&docker.HealthConfig{Test: []string{"CMD", "old"}, Retries: 9})
	}, changes: []string{`HEALTHCHECK --interval=5m --timeout=3s CMD curl -f http://localhost/ || exit 1`},
		check: func(t *testing.T, b *Builder) {
			equal(t, "Healthcheck", b.Healthcheck(), &docker.HealthConfig{
				Test: []string{"CMD-SHELL", "curl -f http://localhost/ || exit 1"}, Interval: 5 * time.Minute, Timeout: 3 * time.Second})
		}},
	{name: "HEALTHCHECK NONE", changes: []string{`HEALTHCHECK NONE`},
		check: func(t *testing.T, b *Builder) {
			equal(t, "Healthcheck", b.Healthcheck(), &docker.HealthConfig{Test: []string{"NONE"}})
		}},
	{name: "continuation lines", changes: []string{"LABEL a=1 \\\n  b=2"},
		check: func(t *testing.T, b *Builder) { equal(t, "Labels", b.Labels(), map[string]string{"a": "1", "b": "2"}) }},

	// Errors leave the whole batch undone.
	{name: "unknown instruction", changes: []string{`ENV A=1`, `BOGUS x`}, errIs: []error{ErrInvalidChange}, errSub: `"BOGUS x"`},
	{name: "build step", changes: []string{`RUN make`}, errIs: []error{ErrInvalidChange}, errSub: `"RUN make"`},
	{name: "bad port", changes: []string{`LABEL a=1`, `EXPOSE 80 70000`}, errIs: []error{ErrInvalidChange, ErrInvalidPort}, errSub: `"EXPOSE 80 70000"`},
	{name: "bad protocol", changes: []string{`EXPOSE 80/icmp`}, errIs: []error{ErrInvalidChange, ErrInvalidPort}, errSub: `"80/icmp"`},
	{name: "bad signal", changes: []string{`STOPSIGNAL SIGNOPE`}, errIs: []error{ErrInvalidChange, ErrInvalidSignal}, errSub: `"STOPSIGNAL SIGNOPE"`},
	{name: "malformed ENV", changes: []string{`ENV A`}, errIs: []error{ErrInvalidChange}, errSub: `"ENV A"`},
	{name: "unterminated quote", changes: []string{`USER "app`}, errIs: []error{ErrInvalidChange}, errSub: `"USER \"app"`},
	{name: "SHELL not JSON", changes: []string{`SHELL /bin/bash -c`}, errIs: []error{ErrInvalidChange}, errSub: "JSON"},
	{name: "two instructions in one change", changes: []string{"CMD a\nCMD b"}, errIs: []error{ErrInvalidChange}},
	{name: "empty change", changes: []string{""}, errIs: []error{ErrInvalidChange}},
}

func TestApplyChanges(t *testing.T) {
	store := newTestStore(t)
	for i, tc := range changeCases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := NewBuilder(context.Background(), store, BuilderOptions{FromImage: Scratch, Container: fmt.Sprint("change-", i)})
			if err != nil {
				t.Fatal(err)
			}
			if tc.before != nil {
				tc.before(b)
			}
			oldOCI, oldDocker := b.OCIConfig(), b.DockerConfig()
			err = b.ApplyChanges(tc.changes)
			if tc.errIs == nil {
				if err != nil {
					t.Fatalf("ApplyChanges(%q): %v", tc.changes, err)
				}
				tc.check(t, b)
				inStep(t, b)
				return
			}
			if err == nil {
				t.Fatalf("ApplyChanges(%q) succeeded", tc.changes)
			}
			for _, e := range tc.errIs {
				if !errors.Is(err, e) {
					t.Errorf("error %q is not %v", err, e)
				}
			}
			if !strings.Contains(err.Error(), tc.errSub) {
				t.Errorf("error %q does not contain %s", err, tc.errSub)
			}
			equal(t, "OCI config after a failed batch", b.OCIConfig(), oldOCI)
			equal(t, "Docker config after a failed batch", b.DockerConfig(), oldDocker)
		})
	}
}

// inStep checks that the fields both formats have agree.
func inStep(t *testing.T, b *Builder) {
	t.Helper()
	oc, dc := b.OCIConfig(), b.DockerConfig()
	if dc.Config == nil {
		t.Fatal("no Docker run config")
	}
	equal(t, "Docker Env", dc.Config.Env, oc.Config.Env)
	equal(t, "Docker Cmd", dc.Config.Cmd, oc.Config.Cmd)
	equal(t, "Docker Entrypoint", dc.Config.Entrypoint, oc.Config.Entrypoint)
	equal(t, "Docker User", dc.Config.User, oc.Config.User)
	equal(t, "Docker WorkingDir", dc.Config.WorkingDir, oc.Config.WorkingDir)
	equal(t, "Docker Labels", dc.Config.Labels, oc.Config.Labels)
	equal(t, "Docker Volumes", dc.Config.Volumes, oc.Config.Volumes)
	equal(t, "Docker StopSignal", dc.Config.StopSignal, oc.Config.StopSignal)
	equal(t, "Docker author", dc.Author, oc.Author)
	ports := map[string]struct{}{}
	for p := range dc.Config.ExposedPorts {
		ports[string(p)] = struct{}{}
	}
	if len(ports) > 0 || len(oc.Config.ExposedPorts) > 0 {
		equal(t, "Docker ExposedPorts", ports, oc.Config.ExposedPorts)
	}
}

func TestApplyChangeSingle(t *testing.T) {
	b, err := NewBuilder(context.Background(), newTestStore(t), BuilderOptions{FromImage: Scratch, Container: "single"})
	if err != nil {
		t.Fatal(err)
	}
	// Separate calls are separate batches: ENTRYPOINT resets the CMD.
	if err := b.ApplyChange(`CMD ["serve"]`); err != nil {
		t.Fatal(err)
	}
	if err := b.ApplyChange(`ENTRYPOINT ["/init"]`); err != nil {
		t.Fatal(err)
	}
	equal(t, "Cmd", b.Cmd(), []string(nil))
	err = b.ApplyChange(`NOPE`)
	if !errors.Is(err, ErrInvalidChange) || !strings.Contains(err.Error(), `"NOPE"`) {
		t.Errorf("ApplyChange(NOPE) = %v, want ErrInvalidChange quoting it", err)
	}
}

// TestApplyChangesCommitted applies changes, commits in both formats and
// reads the configs back, then again after Save and OpenBuilder.
func TestApplyChangesCommitted(t *testing.T) {
	store := newTestStore(t)
	b, err := NewBuilder(context.Background(), store, BuilderOptions{FromImage: Scratch, Container: "changes"})
	if err != nil {
		t.Fatal(err)
	}
	err = b.ApplyChanges([]string{
		`ENV APP=/opt/app`,
		`WORKDIR $APP`,
		`CMD ["--port", "8080"]`,
		`ENTRYPOINT ["/opt/app/bin/server"]`,
		`EXPOSE 8080/tcp 9000-9001/udp`,
		`LABEL org.opencontainers.image.title="demo app"`,
		`VOLUME /data`,
		`USER 1000`,
		`STOPSIGNAL SIGINT`,
		`HEALTHCHECK --interval=30s --retries=3 CMD ["/opt/app/bin/check"]`,
		`ONBUILD RUN echo child`,
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, c committed) {
		t.Helper()
		rc := c.runConfig(t)
		for _, f := range []struct {
			what      string
			oci, dckr any
			want      any
		}{
			{"Env", c.oci.Config.Env, rc.Env, []string{"APP=/opt/app"}},
			{"WorkingDir", c.oci.Config.WorkingDir, rc.WorkingDir, "/opt/app"},
			{"Cmd", c.oci.Config.Cmd, rc.Cmd, []string{"--port", "8080"}},
			{"Entrypoint", c.oci.Config.Entrypoint, rc.Entrypoint, []string{"/opt/app/bin/server"}},
			{"Labels", c.oci.Config.Labels, rc.Labels, map[string]string{"org.opencontainers.image.title": "demo app"}},
			{"User", c.oci.Config.User, rc.User, "1000"},
			{"StopSignal", c.oci.Config.StopSignal, rc.StopSignal, "SIGINT"},
		} {
			equal(t, "OCI "+f.what, f.oci, f.want)
			equal(t, "Docker "+f.what, f.dckr, f.want)
		}
		equal(t, "OCI ExposedPorts", c.oci.Config.ExposedPorts, keySet("8080/tcp", "9000/udp", "9001/udp"))
		equal(t, "Docker ExposedPorts", rc.ExposedPorts, portSet("8080/tcp", "9000/udp", "9001/udp"))
		equal(t, "OCI Volumes", c.oci.Config.Volumes, keySet("/data"))
		equal(t, "Docker Volumes", rc.Volumes, keySet("/data"))
		equal(t, "Docker Healthcheck", rc.Healthcheck, &docker.HealthConfig{Test: []string{"CMD", "/opt/app/bin/check"}, Interval: 30 * time.Second, Retries: 3})
		equal(t, "Docker OnBuild", rc.OnBuild, []string{"RUN echo child"})
		notInOCI(t, c, "Healthcheck")
		notInOCI(t, c, "OnBuild")
	}
	check(t, commitBoth(t, b))
	if err := b.Save(); err != nil {
		t.Fatal(err)
	}
	reopened, err := OpenBuilder(store, "changes")
	if err != nil {
		t.Fatal(err)
	}
	sameState(t, b, reopened)
	check(t, commitBoth(t, reopened))
}
