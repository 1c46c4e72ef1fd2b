package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"
	"go.podman.io/storage"
)

// envRoot names the directory of the embedded store.
const envRoot = "BRICKLAYER_ROOT"

// storageFlags are the global flags that select the store.
type storageFlags struct {
	root, runRoot, driver string
	opts                  []string
}

func (f *storageFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.root, "root", "", "containers storage root directory (selects the system's containers storage)")
	fs.StringVar(&f.runRoot, "runroot", "", "containers storage run directory (selects the system's containers storage)")
	fs.StringVar(&f.driver, "storage-driver", "", "containers storage driver: vfs or overlay (selects the system's containers storage)")
	fs.StringArrayVar(&f.opts, "storage-opt", nil, "containers storage driver option (repeatable)")
}

// system reports whether the flags ask for the system's containers storage.
func (f *storageFlags) system() bool {
	return f.root != "" || f.runRoot != "" || f.driver != ""
}

// options returns the store options the flags select.
//
// With none of --root, --runroot and --storage-driver, it is bricklayer's
// embedded store: vfs, under $BRICKLAYER_ROOT (storage/ and run/), else
// under the user's data directory with the run root in $XDG_RUNTIME_DIR,
// and no system configuration is read. With any of them, it is the system's
// containers storage as podman and buildah see it (storage.conf), with the
// flags overriding what they name; a driver other than the configured one
// drops the configured driver options, which belong to the other driver.
func (f *storageFlags) options() (storage.StoreOptions, error) {
	var opts storage.StoreOptions
	if f.system() {
		def, err := storage.DefaultStoreOptions()
		if err != nil {
			return opts, fmt.Errorf("reading the containers storage configuration: %w", err)
		}
		opts = def
		if f.root != "" {
			opts.GraphRoot = abs(f.root)
		}
		if f.runRoot != "" {
			opts.RunRoot = abs(f.runRoot)
		}
		if f.driver != "" && f.driver != opts.GraphDriverName {
			opts.GraphDriverName = f.driver
			opts.GraphDriverOptions = nil
		}
	} else {
		var err error
		if opts, err = embeddedStoreOptions(); err != nil {
			return opts, err
		}
	}
	opts.GraphDriverOptions = append(opts.GraphDriverOptions, f.opts...)
	return opts, nil
}

// blobInfoCacheDir is where containers/image keeps its blob info cache
// with the store the flags select: "" (the system's default) with the
// system's containers storage, as podman and buildah share it; cache/
// beside bricklayer's embedded store, which reads and writes nothing of
// the system's.
func (f *storageFlags) blobInfoCacheDir() (string, error) {
	if f.system() {
		return "", nil
	}
	opts, err := embeddedStoreOptions()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(opts.GraphRoot), "cache"), nil
}

// embeddedStoreOptions are the options of bricklayer's own store.
func embeddedStoreOptions() (storage.StoreOptions, error) {
	var graphRoot, runRoot string
	if dir := os.Getenv(envRoot); dir != "" {
		dir = abs(dir)
		graphRoot, runRoot = filepath.Join(dir, "storage"), filepath.Join(dir, "run")
	} else {
		data := os.Getenv("XDG_DATA_HOME")
		if !filepath.IsAbs(data) {
			home, err := os.UserHomeDir()
			if err != nil {
				return storage.StoreOptions{}, errors.New("finding a directory for the store: set $BRICKLAYER_ROOT, $XDG_DATA_HOME or $HOME, or use --root")
			}
			data = filepath.Join(home, ".local", "share")
		}
		dir := filepath.Join(data, "bricklayer")
		graphRoot, runRoot = filepath.Join(dir, "storage"), filepath.Join(dir, "run")
		if rt := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(rt) {
			runRoot = filepath.Join(rt, "bricklayer")
		}
	}
	opts := storage.StoreOptions{GraphRoot: graphRoot, RunRoot: runRoot, GraphDriverName: "vfs"}
	if os.Geteuid() != 0 {
		// Without root, files of other owners in base images cannot be
		// created; keep them owned by the user rather than fail.
		opts.GraphDriverOptions = []string{"vfs.ignore_chown_errors=true"}
	}
	return opts, nil
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
