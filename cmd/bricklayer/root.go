package main

import (
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	is "go.podman.io/image/v5/storage"
	"go.podman.io/storage"
)

// app holds the global options and the store, opened on first use and shut
// down when the command is done.
type app struct {
	storage  storageFlags
	logLevel string

	store storage.Store
}

func newApp() *app { return &app{} }

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "bricklayer",
		Short: "Make container images from working containers",
		Long: `bricklayer makes container images from working containers.

Create a working container from an image or from scratch, copy files into it,
set its config, then commit it to any containers/image destination: a local
image, an OCI layout (oci:DIR:TAG), a registry (docker://HOST/NAME:TAG), ...

By default everything lives in bricklayer's own store (vfs driver) under
$BRICKLAYER_ROOT, else $XDG_DATA_HOME/bricklayer (~/.local/share/bricklayer).
Give --root, --runroot or --storage-driver to work in the system's containers
storage instead, where podman, buildah and skopeo see the same images.

Exit status: 0 on success, 1 when a command failed, 2 for a command line error.`,
		Example: `  ctr=$(bricklayer from scratch)
  bricklayer copy $ctr ./rootfs /
  bricklayer config $ctr --cmd '["/app"]' --env LANG=C.UTF-8
  bricklayer commit $ctr oci:./out:latest
  bricklayer commit $ctr myimage        # localhost/myimage:latest in the store`,
		Version:           version(),
		SilenceErrors:     true,
		SilenceUsage:      true,
		DisableAutoGenTag: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			lvl, err := logrus.ParseLevel(a.logLevel)
			if err != nil {
				return usagef("--log-level %q: want one of debug, info, warn, error", a.logLevel)
			}
			logrus.SetLevel(lvl)
			logrus.SetOutput(cmd.ErrOrStderr())
			return nil
		},
	}
	a.storage.register(root.PersistentFlags())
	root.PersistentFlags().StringVar(&a.logLevel, "log-level", "warn", "log messages at this level and above: debug, info, warn, error")
	root.AddCommand(
		a.fromCommand(),
		a.addCommand("add"),
		a.addCommand("copy"),
		a.configCommand(),
		a.commitCommand(),
		a.containersCommand(),
		a.imagesCommand(),
		a.inspectCommand(),
		a.mountCommand(),
		a.umountCommand(),
		a.rmCommand(),
		a.rmiCommand(),
		a.verifyCommand(),
	)
	return root
}

// runE wraps a command's body: the errors it returns are failures (exit
// status 1) unless they are usage errors.
func runE(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		var u *usageError
		if err == nil || errors.As(err, &u) {
			return err
		}
		return &failure{err: err}
	}
}

// openStore opens the store the global flags select, once, and makes it the
// store of the containers-storage: transport.
func (a *app) openStore() (storage.Store, error) {
	if a.store != nil {
		return a.store, nil
	}
	opts, err := a.storage.options()
	if err != nil {
		return nil, err
	}
	store, err := storage.GetStore(opts)
	if err != nil {
		return nil, fmt.Errorf("opening the store at %s (driver %s): %w", opts.GraphRoot, driverName(opts.GraphDriverName), err)
	}
	logrus.Debugf("store: root %s, run root %s, driver %s", store.GraphRoot(), store.RunRoot(), store.GraphDriverName())
	is.Transport.SetStore(store)
	a.store = store
	return store, nil
}

// close shuts the store down, leaving mounted containers mounted.
func (a *app) close() {
	if a.store == nil {
		return
	}
	if _, err := a.store.Shutdown(false); err != nil && !errors.Is(err, storage.ErrLayerUsedByContainer) {
		logrus.Debugf("shutting down the store: %v", err)
	}
	a.store = nil
}

func driverName(d string) string {
	if d == "" {
		return "auto"
	}
	return d
}

// version is the module version the binary was built from.
func version() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}
