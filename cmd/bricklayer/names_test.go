package main

import (
	"path/filepath"
	"slices"
	"testing"
)

func TestLocalName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"app", "localhost/app:latest"},
		{"app:1.2", "localhost/app:1.2"},
		{"team/app", "localhost/team/app:latest"},
		{"localhost/app", "localhost/app:latest"},
		{"quay.io/team/app:v1", "quay.io/team/app:v1"},
		{"localhost:5000/app", "localhost:5000/app:latest"},
		{"docker.io/library/alpine", "docker.io/library/alpine:latest"},
	} {
		got, err := localName(tc.in)
		if err != nil || got.String() != tc.want {
			t.Errorf("localName(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "UPPER", "a b"} {
		if got, err := localName(bad); err == nil {
			t.Errorf("localName(%q) = %v, want an error", bad, got)
		}
	}
}

func TestTransportRef(t *testing.T) {
	// A store of the test's own: the system's may hold several drivers,
	// which makes a reference without one ambiguous.
	dir := t.TempDir()
	storeSpec := "[vfs@" + filepath.Join(dir, "root") + "+" + filepath.Join(dir, "run") + "]"
	for _, tc := range []struct {
		in        string
		ok, isErr bool
		transport string
	}{
		{"oci:/tmp/x:latest", true, false, "oci"},
		{"docker://quay.io/a/b:c", true, false, "docker"},
		{"dir:/tmp/d", true, false, "dir"},
		{"containers-storage:" + storeSpec + "localhost/a:b", true, false, "containers-storage"},
		{"docker:nodoubleslash", true, true, ""},
		{"app:1.2", false, false, ""},
		{"localhost:5000/app", false, false, ""},
		{"app", false, false, ""},
	} {
		ref, ok, err := transportRef(tc.in)
		if ok != tc.ok || (err != nil) != tc.isErr {
			t.Errorf("transportRef(%q): ok %v err %v; want ok %v, error %v", tc.in, ok, err, tc.ok, tc.isErr)
			continue
		}
		if tc.transport != "" && ref.Transport().Name() != tc.transport {
			t.Errorf("transportRef(%q): transport %s, want %s", tc.in, ref.Transport().Name(), tc.transport)
		}
	}
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		in    string
		shell bool
		want  []string
	}{
		{`["/bin/app","-v"]`, true, []string{"/bin/app", "-v"}},
		{` ["a b"] `, true, []string{"a b"}},
		{"echo $HOME", true, []string{"/bin/sh", "-c", "echo $HOME"}},
		{"/bin/bash -c", false, []string{"/bin/bash", "-c"}},
		{"", true, nil},
		{"[]", true, []string{}},
	} {
		got, err := commandLine(tc.in, tc.shell)
		if err != nil || !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("commandLine(%q, %v) = %q, %v; want %q", tc.in, tc.shell, got, err, tc.want)
		}
	}
	if _, err := commandLine(`["unterminated`, true); err == nil {
		t.Error("commandLine accepted a broken JSON array")
	}
}

func TestEmbeddedStoreOptions(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(envRoot, dir)
	var f storageFlags
	opts, err := f.options()
	if err != nil {
		t.Fatal(err)
	}
	if opts.GraphRoot != filepath.Join(dir, "storage") || opts.RunRoot != filepath.Join(dir, "run") || opts.GraphDriverName != "vfs" {
		t.Errorf("with $%s=%s: %+v", envRoot, dir, opts)
	}

	t.Setenv(envRoot, "")
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(dir, "rt"))
	if opts, err = f.options(); err != nil {
		t.Fatal(err)
	}
	if opts.GraphRoot != filepath.Join(dir, "data", "bricklayer", "storage") || opts.RunRoot != filepath.Join(dir, "rt", "bricklayer") {
		t.Errorf("with XDG directories: %+v", opts)
	}

	f = storageFlags{root: filepath.Join(dir, "r"), runRoot: filepath.Join(dir, "rr"), driver: "vfs", opts: []string{"vfs.ignore_chown_errors=true"}}
	if opts, err = f.options(); err != nil {
		t.Fatal(err)
	}
	if opts.GraphRoot != f.root || opts.RunRoot != f.runRoot || opts.GraphDriverName != "vfs" || !slices.Contains(opts.GraphDriverOptions, "vfs.ignore_chown_errors=true") {
		t.Errorf("with --root, --runroot, --storage-driver, --storage-opt: %+v", opts)
	}
}
