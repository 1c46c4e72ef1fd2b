package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"go.podman.io/image/v5/types"
	"golang.org/x/term"
)

// registryFlags are the flags of the commands that talk to registries.
type registryFlags struct {
	tlsVerify       bool
	authFile        string
	certDir         string
	signaturePolicy string
	creds           string
	fs              *pflag.FlagSet
	store           *storageFlags
}

// register adds the flags to fs; store is the store they go with.
func (f *registryFlags) register(fs *pflag.FlagSet, store *storageFlags) {
	f.fs, f.store = fs, store
	fs.BoolVar(&f.tlsVerify, "tls-verify", true, "require HTTPS and verify certificates when talking to registries")
	fs.StringVar(&f.authFile, "authfile", os.Getenv("REGISTRY_AUTH_FILE"), "registry credentials file (default: $REGISTRY_AUTH_FILE, else the containers auth.json)")
	fs.StringVar(&f.certDir, "cert-dir", "", "directory of certificates (*.crt, *.cert, *.key) for registries")
	fs.StringVar(&f.signaturePolicy, "signature-policy", "", "signature policy file (default: the system's policy.json, else accept anything)")
	fs.StringVar(&f.creds, "creds", "", "registry credentials, USERNAME[:PASSWORD] (the password is asked for on a terminal when left out)")
}

// systemContext builds the containers/image SystemContext the flags describe.
// --tls-verify left alone keeps the registries.conf settings. Bad --creds
// are a usage error. containers/image's blob info cache goes with the
// store (see storageFlags.blobInfoCacheDir).
func (f *registryFlags) systemContext() (*types.SystemContext, error) {
	auth, err := f.credentials()
	if err != nil {
		return nil, err
	}
	if f.authFile != "" {
		// containers/image would take a missing file for one without
		// credentials, and the registry's refusal would say nothing of it.
		if _, err := os.Stat(f.authFile); err != nil {
			return nil, usagef("--authfile %q: %v", f.authFile, err)
		}
	}
	sys := &types.SystemContext{
		AuthFilePath:     f.authFile,
		DockerCertPath:   f.certDir,
		DockerAuthConfig: auth,
	}
	if f.store != nil {
		if sys.BlobInfoCacheDir, err = f.store.blobInfoCacheDir(); err != nil {
			return nil, err
		}
	}
	if f.fs != nil && f.fs.Changed("tls-verify") {
		skip := types.NewOptionalBool(!f.tlsVerify)
		sys.DockerInsecureSkipTLSVerify = skip
		sys.OCIInsecureSkipTLSVerify = !f.tlsVerify
		sys.DockerDaemonInsecureSkipTLSVerify = !f.tlsVerify
	}
	return sys, nil
}

// credentials are what --creds gives, nil without it. A password left out
// is read from the terminal, without echo; with no terminal it is a usage
// error. The flag's value is never repeated in a message.
func (f *registryFlags) credentials() (*types.DockerAuthConfig, error) {
	if f.creds == "" {
		return nil, nil
	}
	user, password, hasPassword := strings.Cut(f.creds, ":")
	if user == "" {
		return nil, usagef("--creds: no user name before the colon (want USERNAME[:PASSWORD])")
	}
	if !hasPassword {
		stdin := int(os.Stdin.Fd())
		if !term.IsTerminal(stdin) {
			return nil, usagef("--creds %s: no password, and no terminal to ask for one (want USERNAME:PASSWORD)", user)
		}
		fmt.Fprintf(os.Stderr, "Password for %s: ", user)
		b, err := term.ReadPassword(stdin)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return nil, fmt.Errorf("reading the password for %s: %w", user, err)
		}
		password = string(b)
	}
	return &types.DockerAuthConfig{Username: user, Password: password}, nil
}
