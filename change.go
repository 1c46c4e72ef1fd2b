package bricklayer

import (
	"fmt"
	"path"

	"github.com/bricklayer/bricklayer/internal/dockerfile"
)

// ApplyChange applies one Dockerfile instruction to the image config, as
// "docker commit --change" does: CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK,
// LABEL, MAINTAINER, ONBUILD, SHELL, STOPSIGNAL, USER, VOLUME or WORKDIR.
// It is [Builder.ApplyChanges] with one change; see there.
func (b *Builder) ApplyChange(change string) error {
	return b.ApplyChanges([]string{change})
}

// ApplyChanges applies Dockerfile instructions to the image config in
// order, all or none: when one fails, the config is left as it was and the
// error quotes that change and wraps [ErrInvalidChange] (and
// [ErrInvalidPort] or [ErrInvalidSignal] when a port or signal was the
// problem). Like the setters, it changes memory only; call [Builder.Save].
//
// Instructions are read as a Dockerfile has them, in Docker's way: names in
// any case; quotes, escapes and line continuations; $NAME and ${NAME…} in
// ENV, LABEL, EXPOSE, USER, VOLUME, WORKDIR and STOPSIGNAL expanded from the
// environment as it stands before the instruction. And they take effect as
// in a Dockerfile:
//   - CMD and ENTRYPOINT in shell form run through the shell set by SHELL
//     (or an earlier [Builder.SetShell]), else /bin/sh -c (cmd /S /C for a
//     Windows image);
//   - ENTRYPOINT removes the command unless a CMD came before it in the
//     same call, as "docker commit --change" does (podman keeps it);
//   - ENV, LABEL, EXPOSE and VOLUME add to what is there, ONBUILD appends;
//   - a relative WORKDIR is joined to the current working directory;
//   - MAINTAINER sets the author; HEALTHCHECK replaces the health check.
//
// Each change holds one instruction: FROM, RUN, COPY, ADD and ARG are
// build steps and refused, and so is an instruction that Docker accepts
// only to fail at a later build (ONBUILD FOO).
func (b *Builder) ApplyChanges(changes []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	// The state's setters replace what they change rather than modify it,
	// so a shallow copy is enough to keep b.state intact until all succeed.
	// Changes touch the two configs only, and only those are stored back:
	// some getters read the other fields without the lock.
	next := b.state
	cmdSet := false
	for _, c := range changes {
		if err := next.applyChange(c, &cmdSet); err != nil {
			return fmt.Errorf("applying change %q: %w: %w", c, ErrInvalidChange, err)
		}
	}
	b.state.OCIConfig, b.state.DockerConfig = next.OCIConfig, next.DockerConfig
	return nil
}

// applyChange parses and applies one change. cmdSet says whether a CMD
// came earlier in the same batch, which keeps ENTRYPOINT from removing it.
func (s *builderState) applyChange(change string, cmdSet *bool) error {
	ins, err := dockerfile.Parse(change, s.OCIConfig.Config.Env)
	if err != nil {
		return err
	}
	switch ins.Name {
	case "CMD":
		s.setCmd(s.command(ins))
		*cmdSet = true
	case "ENTRYPOINT":
		s.setEntrypoint(s.command(ins))
		if !*cmdSet {
			s.setCmd(nil)
		}
	case "SHELL":
		s.setShell(ins.Args)
	case "ENV":
		for _, kv := range ins.Pairs {
			s.setEnv(kv.Key, kv.Value)
		}
	case "LABEL":
		for _, kv := range ins.Pairs {
			s.setLabel(kv.Key, kv.Value)
		}
	case "EXPOSE":
		s.addPorts(ins.Args)
	case "VOLUME":
		for _, v := range ins.Args {
			s.addVolume(v)
		}
	case "USER":
		s.setUser(ins.Args[0])
	case "WORKDIR":
		dir := ins.Args[0]
		if path.IsAbs(dir) {
			dir = path.Clean(dir)
		} else {
			dir = path.Join("/", s.OCIConfig.Config.WorkingDir, dir)
		}
		s.setWorkDir(dir)
	case "STOPSIGNAL":
		s.setStopSignal(ins.Args[0])
	case "MAINTAINER":
		s.setAuthor(ins.Args[0])
	case "ONBUILD":
		s.addOnBuild(ins.Args[0])
	case "HEALTHCHECK":
		s.setHealthcheck(ins.Health)
	default:
		// Parse returns only the instructions above.
		return fmt.Errorf("instruction %s is not handled", ins.Name)
	}
	return nil
}

// command is the argv of a CMD or ENTRYPOINT: the exec form as given, or
// the shell form run by the image's shell.
func (s *builderState) command(ins *dockerfile.Instruction) []string {
	if ins.JSON {
		return ins.Args
	}
	shell := []string{"/bin/sh", "-c"}
	if s.OCIConfig.OS == "windows" {
		shell = []string{"cmd", "/S", "/C"}
	}
	if c := s.DockerConfig.Config; c != nil && len(c.Shell) > 0 {
		shell = c.Shell
	}
	return append(append([]string{}, shell...), ins.Args[0])
}
