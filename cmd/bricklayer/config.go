package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/bricklayer/bricklayer"
	"github.com/spf13/cobra"
)

type configFlags struct {
	env, label, annotation, port, volume, onBuild, change []string

	cmd, entrypoint, shell                       string
	user, workDir, author, stopSignal, comment   string
	createdBy, historyComment, os, arch, variant string
	hostname, domainname                         string
}

func (a *app) configCommand() *cobra.Command {
	var f configFlags
	cmd := &cobra.Command{
		Use:   "config CONTAINER [flags] [--change INSTRUCTION]...",
		Short: "Set the config of a working container",
		Long: `Set the image config that a working container will be committed with.

Repeatable flags that take KEY=VALUE (--env, --label, --annotation) remove the
key when given KEY- instead; --port and --volume remove an entry given as
VALUE-. --cmd, --entrypoint and --shell take a JSON array (exec form) or a
string; a string is run by /bin/sh -c (shell form) for --cmd and
--entrypoint, split on spaces for --shell; an empty string clears them.
--change takes a Dockerfile instruction (ENV, LABEL, CMD, ENTRYPOINT, USER,
WORKDIR, EXPOSE, VOLUME, STOPSIGNAL, ONBUILD, SHELL, ...) and is applied after
the other flags, in order.`,
		Example: `  bricklayer config work --env PATH=/usr/bin:/bin --cmd '["/app","--serve"]' --port 8080
  bricklayer config work --label org.opencontainers.image.version=1.2 --workingdir /srv
  bricklayer config work --change 'ENV LANG=C.UTF-8' --change 'USER 1000:1000'`,
		Args: cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			edits, err := f.edits(cmd)
			if err != nil {
				return err
			}
			b, err := a.openBuilder(args[0])
			if err != nil {
				return err
			}
			for _, edit := range edits {
				if err := edit(b); err != nil {
					// A value the config API cannot parse is the command
					// line's fault.
					if errors.Is(err, bricklayer.ErrInvalidPort) || errors.Is(err, bricklayer.ErrInvalidSignal) || errors.Is(err, bricklayer.ErrInvalidChange) {
						return usagef("configuring container %s: %v", b.ContainerName(), err)
					}
					return fmt.Errorf("configuring container %s: %w", b.ContainerName(), err)
				}
			}
			return b.Save()
		}),
	}
	fs := cmd.Flags()
	fs.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable, KEY=VALUE (KEY- removes it)")
	fs.StringArrayVarP(&f.label, "label", "l", nil, "set a label, KEY=VALUE (KEY- removes it)")
	fs.StringArrayVarP(&f.annotation, "annotation", "a", nil, "set a manifest annotation, KEY=VALUE (KEY- removes it)")
	fs.StringArrayVarP(&f.port, "port", "p", nil, "expose a port, PORT[/PROTO] (PORT[/PROTO]- removes it)")
	fs.StringArrayVarP(&f.volume, "volume", "v", nil, "declare a volume, PATH (PATH- removes it)")
	fs.StringArrayVar(&f.onBuild, "onbuild", nil, "add an ONBUILD trigger (Docker format only)")
	fs.StringArrayVar(&f.change, "change", nil, "apply a Dockerfile instruction, e.g. 'ENV A=b' (repeatable)")
	fs.StringVar(&f.cmd, "cmd", "", "default command: JSON array, or a string run by /bin/sh -c")
	fs.StringVar(&f.entrypoint, "entrypoint", "", "entrypoint: JSON array, or a string run by /bin/sh -c")
	fs.StringVar(&f.shell, "shell", "", "shell for shell-form instructions: JSON array or space-separated words (Docker format only)")
	fs.StringVarP(&f.user, "user", "u", "", "user (and group) to run as: USER[:GROUP], names or IDs")
	fs.StringVar(&f.workDir, "workingdir", "", "working directory")
	fs.StringVar(&f.author, "author", "", "author of the image")
	fs.StringVar(&f.stopSignal, "stop-signal", "", "signal that stops the container, e.g. SIGTERM")
	fs.StringVar(&f.comment, "comment", "", "image comment (Docker format only)")
	fs.StringVar(&f.createdBy, "created-by", "", "created_by of the history entry the commit adds")
	fs.StringVar(&f.historyComment, "history-comment", "", "comment of the history entry the commit adds")
	fs.StringVar(&f.os, "os", "", "operating system the image runs on")
	fs.StringVar(&f.arch, "arch", "", "architecture the image runs on")
	fs.StringVar(&f.variant, "variant", "", "architecture variant, e.g. v8")
	fs.StringVar(&f.hostname, "hostname", "", "hostname (Docker format only)")
	fs.StringVar(&f.domainname, "domainname", "", "domain name (Docker format only)")
	cmd.ValidArgsFunction = a.completeContainers(1)
	return cmd
}

// edit is one change to a builder.
type edit func(b *bricklayer.Builder) error

// edits checks the flags and returns the changes they ask for, in a fixed
// order with --change last. Every error is a usage error.
func (f *configFlags) edits(cmd *cobra.Command) ([]edit, error) {
	var edits []edit
	do := func(fn func(b *bricklayer.Builder)) {
		edits = append(edits, func(b *bricklayer.Builder) error { fn(b); return nil })
	}
	changed := cmd.Flags().Changed
	strs := []struct {
		flag string
		val  string
		set  func(b *bricklayer.Builder, s string)
	}{
		{"user", f.user, (*bricklayer.Builder).SetUser},
		{"workingdir", f.workDir, (*bricklayer.Builder).SetWorkDir},
		{"author", f.author, (*bricklayer.Builder).SetAuthor},
		{"comment", f.comment, (*bricklayer.Builder).SetComment},
		{"created-by", f.createdBy, (*bricklayer.Builder).SetCreatedBy},
		{"history-comment", f.historyComment, (*bricklayer.Builder).SetHistoryComment},
		{"os", f.os, (*bricklayer.Builder).SetOS},
		{"arch", f.arch, (*bricklayer.Builder).SetArchitecture},
		{"variant", f.variant, (*bricklayer.Builder).SetVariant},
		{"hostname", f.hostname, (*bricklayer.Builder).SetHostname},
		{"domainname", f.domainname, (*bricklayer.Builder).SetDomainname},
	}
	for _, s := range strs {
		if changed(s.flag) {
			do(func(b *bricklayer.Builder) { s.set(b, s.val) })
		}
	}
	if changed("stop-signal") {
		edits = append(edits, func(b *bricklayer.Builder) error { return b.SetStopSignal(f.stopSignal) })
	}
	for _, c := range []struct {
		flag, val string
		set       func(b *bricklayer.Builder, argv []string)
	}{
		{"cmd", f.cmd, (*bricklayer.Builder).SetCmd},
		{"entrypoint", f.entrypoint, (*bricklayer.Builder).SetEntrypoint},
	} {
		if !changed(c.flag) {
			continue
		}
		argv, err := commandLine(c.val, true)
		if err != nil {
			return nil, usagef("--%s %q: %v", c.flag, c.val, err)
		}
		do(func(b *bricklayer.Builder) { c.set(b, argv) })
	}
	if changed("shell") {
		argv, err := commandLine(f.shell, false)
		if err != nil {
			return nil, usagef("--shell %q: %v", f.shell, err)
		}
		do(func(b *bricklayer.Builder) { b.SetShell(argv) })
	}
	for _, kv := range []struct {
		flag        string
		vals        []string
		set         func(b *bricklayer.Builder, k, v string)
		unset       func(b *bricklayer.Builder, k string)
		emptyValues bool
	}{
		{"env", f.env, (*bricklayer.Builder).SetEnv, (*bricklayer.Builder).UnsetEnv, true},
		{"label", f.label, (*bricklayer.Builder).SetLabel, (*bricklayer.Builder).UnsetLabel, true},
		{"annotation", f.annotation, (*bricklayer.Builder).SetAnnotation, (*bricklayer.Builder).UnsetAnnotation, true},
	} {
		for _, s := range kv.vals {
			k, v, hasValue := strings.Cut(s, "=")
			switch {
			case !hasValue && strings.HasSuffix(s, "-") && len(s) > 1:
				k = strings.TrimSuffix(s, "-")
				do(func(b *bricklayer.Builder) { kv.unset(b, k) })
			case !hasValue || k == "":
				return nil, usagef("--%s %q: want KEY=VALUE, or KEY- to remove KEY", kv.flag, s)
			default:
				do(func(b *bricklayer.Builder) { kv.set(b, k, v) })
			}
		}
	}
	for _, p := range f.port {
		if p == "" || p == "-" {
			return nil, usagef("--port %q: want PORT[/PROTO]", p)
		}
		if port, remove := strings.CutSuffix(p, "-"); remove {
			do(func(b *bricklayer.Builder) { b.UnsetPort(port) })
		} else {
			edits = append(edits, func(b *bricklayer.Builder) error { return b.SetPort(p) })
		}
	}
	for _, v := range f.volume {
		if v == "" || v == "-" {
			return nil, usagef("--volume %q: want PATH", v)
		}
		if path, remove := strings.CutSuffix(v, "-"); remove {
			do(func(b *bricklayer.Builder) { b.RemoveVolume(path) })
		} else {
			do(func(b *bricklayer.Builder) { b.AddVolume(v) })
		}
	}
	for _, o := range f.onBuild {
		do(func(b *bricklayer.Builder) { b.AddOnBuild(o) })
	}
	for _, c := range f.change {
		edits = append(edits, func(b *bricklayer.Builder) error { return b.ApplyChange(c) })
	}
	return edits, nil
}

// commandLine parses the value of --cmd, --entrypoint or --shell: a JSON
// array of strings, or a plain string that is wrapped in /bin/sh -c when
// shellForm is true and split on white space otherwise. "" is nil.
func commandLine(s string, shellForm bool) ([]string, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, nil
	}
	if strings.HasPrefix(t, "[") {
		var argv []string
		if err := json.Unmarshal([]byte(t), &argv); err != nil {
			return nil, err
		}
		return argv, nil
	}
	if shellForm {
		return []string{"/bin/sh", "-c", s}, nil
	}
	return strings.Fields(s), nil
}
