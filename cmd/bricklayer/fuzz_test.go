package main

import (
	"strconv"
	"strings"
	"testing"

	"go.podman.io/image/v5/transports"
	"go.podman.io/image/v5/transports/alltransports"
)

// nameSeeds are names and references as users type them, and broken ones.
var nameSeeds = []string{
	"app", "app:1.2", "team/app", "localhost/app", "quay.io/team/app:v1", "localhost:5000/app",
	"docker.io/library/alpine", "app@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	"", "UPPER", "a b", "app:", ":tag", "app::tag", "a//b", "-app", "app:" + strings.Repeat("t", 200),
	"oci:/tmp/x:latest", "oci:", "docker://quay.io/a/b:c", "docker://", "docker:nodoubleslash", "dir:/tmp/d",
	"docker-archive:/x.tar:a:b",
	"nosuch://x", "nosuch:x", "oci-archive:/x.tar", "\xff", "app\x00",
}

// FuzzLocalName: a name either fails with an error that quotes it, or
// normalises to a name that normalises to itself.
func FuzzLocalName(f *testing.F) {
	for _, s := range nameSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		named, err := localName(s)
		if err != nil {
			if s != "" && !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Fatalf("localName(%q): %q does not quote the input", s, err)
			}
			return
		}
		again, err := localName(named.String())
		if err != nil || again.String() != named.String() {
			t.Fatalf("localName(%q) = %s, which normalises to %v, %v", s, named, again, err)
		}
	})
}

// FuzzTransportRef: a string that names a known transport either parses
// to a reference of that transport whose name parses back to the same
// reference, or fails with an error; other strings are left to localName.
func FuzzTransportRef(f *testing.F) {
	for _, s := range nameSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		prefix, _, _ := strings.Cut(s, ":")
		if prefix == "containers-storage" {
			// Parsing such a reference opens (and creates) the store it
			// names: fuzzing it would make directories anywhere on the host.
			return
		}
		ref, ok, err := transportRef(s)
		if ok != (strings.Contains(s, ":") && transports.Get(prefix) != nil) {
			t.Fatalf("transportRef(%q): ok %v for transport %q", s, ok, prefix)
		}
		if !ok || err != nil {
			if ok && !isUsage(err) {
				t.Fatalf("transportRef(%q): %v is not a usage error", s, err)
			}
			return
		}
		if ref.Transport().Name() != prefix {
			t.Fatalf("transportRef(%q): transport %s", s, ref.Transport().Name())
		}
		name := transports.ImageName(ref)
		again, err := alltransports.ParseImageName(name)
		if err != nil {
			t.Fatalf("transportRef(%q) = %s, which does not parse: %v", s, name, err)
		}
		if got := transports.ImageName(again); got != name {
			t.Fatalf("transportRef(%q) = %s, which parses back as %s", s, name, got)
		}
	})
}

func isUsage(err error) bool {
	_, ok := err.(*usageError)
	return ok
}
