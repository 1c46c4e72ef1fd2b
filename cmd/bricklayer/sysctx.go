package main

import (
	"github.com/spf13/pflag"
	"go.podman.io/image/v5/types"
)

// registryFlags are the flags of the commands that talk to registries.
type registryFlags struct {
	tlsVerify       bool
	authFile        string
	certDir         string
	signaturePolicy string
	fs              *pflag.FlagSet
}

func (f *registryFlags) register(fs *pflag.FlagSet) {
	f.fs = fs
	fs.BoolVar(&f.tlsVerify, "tls-verify", true, "require HTTPS and verify certificates when talking to registries")
	fs.StringVar(&f.authFile, "authfile", "", "registry credentials file (default: the containers auth.json)")
	fs.StringVar(&f.certDir, "cert-dir", "", "directory of certificates (*.crt, *.cert, *.key) for registries")
	fs.StringVar(&f.signaturePolicy, "signature-policy", "", "signature policy file (default: the system's policy.json, else accept anything)")
}

// systemContext builds the containers/image SystemContext the flags describe.
// --tls-verify left alone keeps the registries.conf settings.
func (f *registryFlags) systemContext() *types.SystemContext {
	sys := &types.SystemContext{
		AuthFilePath:   f.authFile,
		DockerCertPath: f.certDir,
	}
	if f.fs != nil && f.fs.Changed("tls-verify") {
		skip := types.NewOptionalBool(!f.tlsVerify)
		sys.DockerInsecureSkipTLSVerify = skip
		sys.OCIInsecureSkipTLSVerify = !f.tlsVerify
		sys.DockerDaemonInsecureSkipTLSVerify = !f.tlsVerify
	}
	return sys
}
