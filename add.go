package bricklayer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bricklayer/bricklayer/internal/copier"
	"github.com/sirupsen/logrus"
)

// AddOptions say who owns what [Builder.Add] and [Builder.Copy] write, and
// with which mode. The zero value writes host files owned by root (0:0) with
// their own modes, and archive entries with the owners and modes the archive
// gives, as a Dockerfile COPY or ADD without flags does.
type AddOptions struct {
	// Chown, when set, owns every item written, archive entries included:
	// "user" or "user:group", each part a number or a name. Names are looked
	// up in the container's /etc/passwd and /etc/group. A number alone gives
	// the same number as the group ("1000" is 1000:1000); a user name alone
	// gives that user's primary group.
	Chown string
	// Chmod, when set, is an octal mode ("755", "0644", "4755") given to
	// every file and directory written, but not to symlinks, as Dockerfile
	// COPY --chmod does. Directories that only had to be made to reach the
	// destination are not affected.
	Chmod string
	// PreserveOwnership keeps the host owners of copied host files instead of
	// root. It is ignored when Chown is set.
	PreserveOwnership bool
}

// Add copies sources into the container at dest as a Dockerfile ADD does for
// local sources: like [Builder.Copy], except that a source that is a tar
// archive (plain, or compressed with gzip, bzip2, xz or zstd, told by its
// content, not its name) is extracted into dest, taken as a directory, with
// its entries' paths resolved with dest as their root, as Docker extracts
// one: a symlink in the archive to "/" or "../.." leads later entries, and
// hard links, into dest, never elsewhere in the container. Archive entries
// keep their owners unless opts.Chown is set. URLs are not fetched.
func (b *Builder) Add(ctx context.Context, dest string, opts AddOptions, sources ...string) error {
	return b.add(ctx, dest, opts, sources, true)
}

// Copy copies the host files and directories sources into the container at
// dest as a Dockerfile COPY does; archives are copied as they are.
//
// Each source may be a glob pattern (filepath.Glob syntax); one that matches
// nothing is [ErrNoSource]. A source that is a directory has its contents
// copied, not itself. dest is a directory when it ends in "/" (or "/."), when
// more than one source is given or matched, or when it already is one in the
// container; a file source is then copied into it under its own name, and
// otherwise written at dest. A relative dest is taken from the container's
// working directory. Missing directories on the way are made.
//
// Every path in the container is resolved within its root filesystem: a
// symlink in the container, even to "/" or "../..", never makes a write land
// outside it. Modes, symlinks, hard links, extended attributes (where the
// store's file system takes them) and modification times are kept. Names
// starting with ".wh.", which a layer can't hold as files, are refused with
// [ErrReservedName].
//
// The container is mounted for the copy if it isn't yet, and unmounted
// after. On error, what was written before it stays in the container.
func (b *Builder) Copy(ctx context.Context, dest string, opts AddOptions, sources ...string) error {
	return b.add(ctx, dest, opts, sources, false)
}

func (b *Builder) add(ctx context.Context, dest string, opts AddOptions, sources []string, extract bool) (err error) {
	verb := "copying"
	if extract {
		verb = "adding"
	}
	name := b.ContainerName()
	if len(sources) == 0 {
		return fmt.Errorf("%s to %s in container %s: %w", verb, dest, name, ErrNoSource)
	}
	if dest == "" {
		return fmt.Errorf("%s to container %s: empty destination", verb, name)
	}
	var mode *uint32
	if opts.Chmod != "" {
		m, err := parseChmod(opts.Chmod)
		if err != nil {
			return fmt.Errorf("%s to %s in container %s: %w", verb, dest, name, err)
		}
		mode = &m
	}
	srcs, err := expandSources(sources, extract)
	if err != nil {
		return fmt.Errorf("%s to %s in container %s: %w", verb, dest, name, err)
	}

	mp := b.MountPoint()
	if mp == "" {
		if mp, err = b.Mount(); err != nil {
			return err
		}
		defer func() {
			if uerr := b.Unmount(); uerr != nil && err == nil {
				err = uerr
			}
		}()
	}
	root, err := copier.OpenRoot(mp)
	if err != nil {
		return fmt.Errorf("%s to %s in container %s: %w", verb, dest, name, b.containerGone(err))
	}
	defer root.Close()

	hostOpts := copier.Options{Mode: mode}
	archiveOpts := copier.Options{Mode: mode}
	switch {
	case opts.Chown != "":
		o, err := root.LookupOwner(opts.Chown)
		if err != nil {
			return fmt.Errorf("%s to %s in container %s: %w", verb, dest, name, err)
		}
		hostOpts.Owner, archiveOpts.Owner = &o, &o
	case !opts.PreserveOwnership:
		hostOpts.Owner = &copier.Owner{}
	}

	destPath, destIsDir, err := b.resolveDest(root, dest, len(srcs) > 1)
	if err != nil {
		return fmt.Errorf("%s to %s in container %s: %w", verb, dest, name, err)
	}
	for _, src := range srcs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := addOne(ctx, root, src, destPath, destIsDir, extract, hostOpts, archiveOpts); err != nil {
			return fmt.Errorf("%s %s to %s in container %s: %w", verb, src, dest, name, err)
		}
	}
	return nil
}

// addOne copies or extracts one host source.
func addOne(ctx context.Context, root *copier.Root, src, destPath string, destIsDir, extract bool, hostOpts, archiveOpts copier.Options) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if extract && fi.Mode().IsRegular() {
		rc, format, err := copier.OpenArchive(src)
		if err != nil {
			return err
		}
		if rc != nil {
			logrus.Debugf("extracting %s (%s) into %s", src, format, destPath)
			err := root.Extract(ctx, rc, destPath, archiveOpts)
			if cerr := rc.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("closing %s: %w", src, cerr)
			}
			return err
		}
	}
	target := destPath
	if !fi.IsDir() && destIsDir {
		target = path.Join(destPath, filepath.Base(src))
	}
	logrus.Debugf("copying %s to %s", src, target)
	return root.CopyHost(ctx, src, target, hostOpts)
}

// resolveDest returns dest as a clean path in the container, taken from the
// working directory when relative, and whether it names a directory.
func (b *Builder) resolveDest(root *copier.Root, dest string, many bool) (string, bool, error) {
	dirSyntax := strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.") ||
		dest == ".." || strings.HasSuffix(dest, "/..")
	if !path.IsAbs(dest) {
		b.mu.Lock()
		wd := b.state.OCIConfig.Config.WorkingDir
		b.mu.Unlock()
		dest = path.Join("/", wd, dest)
	}
	dest = copier.Clean(dest)
	if dirSyntax || many || dest == "/" {
		return dest, true, nil
	}
	isDir, err := root.IsDir(dest)
	if err != nil {
		return "", false, err
	}
	return dest, isDir, nil
}

// expandSources expands each source's glob pattern, in order. A pattern
// that matches nothing is an error naming it.
func expandSources(sources []string, add bool) ([]string, error) {
	var out []string
	for _, s := range sources {
		if add && (strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")) {
			return nil, fmt.Errorf("source %s: fetching URLs is not supported", s)
		}
		if s == "" {
			return nil, fmt.Errorf("empty source: %w", ErrNoSource)
		}
		matches, err := filepath.Glob(s)
		if err != nil {
			return nil, fmt.Errorf("source pattern %q: %w", s, err)
		}
		if len(matches) == 0 {
			if _, err := os.Lstat(s); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("source %q: %w", s, err)
			}
			return nil, fmt.Errorf("source %q: %w", s, ErrNoSource)
		}
		out = append(out, matches...)
	}
	return out, nil
}

// parseChmod reads an octal mode of at most 07777.
func parseChmod(s string) (uint32, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, fmt.Errorf("chmod %q: %w (want an octal mode such as 755)", s, ErrInvalidChmod)
	}
	return uint32(m), nil
}
