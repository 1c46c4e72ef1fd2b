package copier

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzLookupOwner feeds --chown specifications and container /etc/passwd
// and /etc/group files. An owner found is found again by its numbers; an
// error quotes the specification and is ErrInvalidChown or ErrUnknownUser,
// or says which entry of the container's files is malformed.
func FuzzLookupOwner(f *testing.F) {
	dir := f.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		f.Fatal(err)
	}
	root, err := OpenRoot(dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { root.Close() })
	passwd := "root:x:0:0:root:/root:/bin/sh\nalice:x:1234:100::/home/alice:/bin/sh\nbroken:x:oops:1\n"
	group := "root:x:0:\nusers:x:100:\nstaff:x:50:alice\n"
	for _, spec := range []string{"0", "1000", "1000:2000", "alice", "alice:staff", "7:staff", "alice:9", "bob", "alice:nogroup",
		"", ":", ":staff", "alice:", "a:b:c", "4294967296", "4294967295", "-1", "+1", "0x10", " 1", "1 ", "root\x00", "broken", "ünïcode", "\xff"} {
		f.Add(spec, passwd, group)
	}
	f.Add("x", "x:y:1:2\n+x:y:3:4\n#x:y:5:6\n", "g::7\n")
	f.Add("a:g", "a:x:1:2:\n", "g:x:99999999999:\n")
	f.Fuzz(func(t *testing.T, spec, passwd, group string) {
		if err := os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte(passwd), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "etc", "group"), []byte(group), 0o644); err != nil {
			t.Fatal(err)
		}
		o, err := root.LookupOwner(spec)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(spec)) {
				t.Fatalf("LookupOwner(%q): %q does not quote the input", spec, err)
			}
			if !errors.Is(err, ErrInvalidChown) && !errors.Is(err, ErrUnknownUser) && !strings.Contains(err.Error(), "malformed") && !strings.Contains(err.Error(), "token too long") {
				t.Fatalf("LookupOwner(%q): %v, want ErrInvalidChown, ErrUnknownUser or a malformed entry", spec, err)
			}
			return
		}
		if o.UID < 0 || o.GID < 0 || o.UID >= 1<<32-1 || o.GID >= 1<<32-1 {
			t.Fatalf("LookupOwner(%q) = %+v: out of range", spec, o)
		}
		again, err := root.LookupOwner(fmt.Sprintf("%d:%d", o.UID, o.GID))
		if err != nil || again != o {
			t.Fatalf("LookupOwner(%q) = %+v, but its numbers give %+v, %v", spec, o, again, err)
		}
	})
}
