package copier

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// LookupOwner reads an owner as Dockerfile's --chown takes it: "user" or
// "user:group", where each part is a number or a name. Names are looked up
// in the root's /etc/passwd and /etc/group, read within the root. A number
// alone gives the same number as the group; a user name alone gives that
// user's primary group. An unknown name is [ErrUnknownUser], a malformed spec
// [ErrInvalidChown].
func (r *Root) LookupOwner(spec string) (Owner, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" || (hasGroup && groupPart == "") || strings.Contains(groupPart, ":") {
		return Owner{}, fmt.Errorf("owner %q: %w (want user or user:group)", spec, ErrInvalidChown)
	}
	var o Owner
	primary := -1
	if id, ok, err := parseID(spec, userPart); err != nil {
		return Owner{}, err
	} else if ok {
		o.UID, primary = id, id
	} else {
		uid, gid, err := r.lookupUser(userPart)
		if err != nil {
			return Owner{}, fmt.Errorf("owner %q: %w", spec, err)
		}
		o.UID, primary = uid, gid
	}
	if !hasGroup {
		o.GID = primary
		return o, nil
	}
	if id, ok, err := parseID(spec, groupPart); err != nil {
		return Owner{}, err
	} else if ok {
		o.GID = id
		return o, nil
	}
	gid, err := r.lookupGroup(groupPart)
	if err != nil {
		return Owner{}, fmt.Errorf("owner %q: %w", spec, err)
	}
	o.GID = gid
	return o, nil
}

// parseID reads s as a numeric ID; ok is false when s is a name.
func parseID(spec, s string) (id int, ok bool, err error) {
	if strings.TrimLeft(s, "0123456789") != "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, false, fmt.Errorf("owner %q: ID %s: %w (out of range)", spec, s, ErrInvalidChown)
	}
	return int(n), true, nil
}

// lookupUser returns the UID and primary GID of the user name.
func (r *Root) lookupUser(name string) (uid, gid int, err error) {
	fields, err := r.lookupDB("/etc/passwd", name, 4)
	if err != nil {
		return 0, 0, err
	}
	if fields == nil {
		return 0, 0, fmt.Errorf("user %q: %w", name, ErrUnknownUser)
	}
	u, err1 := strconv.ParseUint(fields[2], 10, 32)
	g, err2 := strconv.ParseUint(fields[3], 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("user %q: malformed entry in the container's /etc/passwd", name)
	}
	return int(u), int(g), nil
}

// lookupGroup returns the GID of the group name.
func (r *Root) lookupGroup(name string) (int, error) {
	fields, err := r.lookupDB("/etc/group", name, 3)
	if err != nil {
		return 0, err
	}
	if fields == nil {
		return 0, fmt.Errorf("group %q: %w", name, ErrUnknownUser)
	}
	g, err := strconv.ParseUint(fields[2], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("group %q: malformed entry in the container's /etc/group", name)
	}
	return int(g), nil
}

// lookupDB returns the fields of the first line of the colon-separated
// file p (in the root) whose first field is name and which has at least
// minFields fields; nil when there is none or no such file.
func (r *Root) lookupDB(p, name string, minFields int) ([]string, error) {
	data, err := r.ReadFile(p)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxReadFile)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		fields := strings.Split(line, ":")
		if len(fields) >= minFields && fields[0] == name {
			return fields, nil
		}
	}
	return nil, sc.Err()
}

// isNotExist reports errors that mean a path is not in the root.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)
}
