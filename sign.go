package bricklayer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	digest "github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/signature/sigstore"
	is "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
)

// This file makes simple signatures (containers/image's "atomic container
// signature" format) with an OpenPGP private key read from a file, without
// gpgme. containers/image signs simple signatures only through gpgme
// (CommitOptions.SignBy), which the containers_image_openpgp build leaves
// out; its OpenPGP code can verify them, and it is what reads ours back.
//
// The signatures are made over the manifest the commit synthesises, before
// copy.Image runs, and served as the source's own: copy.Image then writes
// them wherever the destination keeps simple signatures, and refuses to
// change the manifest on the way, which would invalidate them.

// openPGPSigner is a signature.SigningMechanism that signs with the one
// private key it holds. It does not verify.
type openPGPSigner struct {
	entity *openpgp.Entity
}

var _ signature.SigningMechanism = (*openPGPSigner)(nil)

// errSignOnly is returned by the verifying methods of openPGPSigner.
var errSignOnly = errors.New("this signing mechanism only signs")

// loadOpenPGPSigner reads the first private key of an armored or binary
// OpenPGP key file (gpg --export-secret-keys) and decrypts it with
// passphrase when it is encrypted.
func loadOpenPGPSigner(path, passphrase string) (*openPGPSigner, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the OpenPGP key: %w", err)
	}
	keyring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	if err != nil {
		if keyring, err = openpgp.ReadKeyRing(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("reading the OpenPGP key %s: %w", path, err)
		}
	}
	for _, e := range keyring {
		if e.PrivateKey == nil {
			continue
		}
		if e.PrivateKey.Encrypted {
			if passphrase == "" {
				return nil, fmt.Errorf("OpenPGP key %s is encrypted: give its passphrase", path)
			}
			if err := e.DecryptPrivateKeys([]byte(passphrase)); err != nil {
				return nil, fmt.Errorf("decrypting the OpenPGP key %s: %w", path, err)
			}
		}
		return &openPGPSigner{entity: e}, nil
	}
	return nil, fmt.Errorf("OpenPGP key file %s holds no private key", path)
}

// fingerprint is the key's fingerprint as containers/image spells key
// identities.
func (s *openPGPSigner) fingerprint() string {
	return strings.ToUpper(fmt.Sprintf("%x", s.entity.PrimaryKey.Fingerprint))
}

func (s *openPGPSigner) Close() error { return nil }

func (s *openPGPSigner) SupportsSigning() error { return nil }

// Sign makes a non-detached signature of input (a signed OpenPGP message
// holding it), whatever keyIdentity says: the signer has one key.
func (s *openPGPSigner) Sign(input []byte, keyIdentity string) ([]byte, error) {
	var buf bytes.Buffer
	w, err := openpgp.Sign(&buf, s.entity, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("signing with OpenPGP key %s: %w", s.fingerprint(), err)
	}
	if _, err := w.Write(input); err != nil {
		return nil, fmt.Errorf("signing with OpenPGP key %s: %w", s.fingerprint(), err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("signing with OpenPGP key %s: %w", s.fingerprint(), err)
	}
	return buf.Bytes(), nil
}

func (s *openPGPSigner) Verify(unverifiedSignature []byte) ([]byte, string, error) {
	return nil, "", errSignOnly
}

func (s *openPGPSigner) UntrustedSignatureContents(untrustedSignature []byte) ([]byte, string, error) {
	return nil, "", errSignOnly
}

// signatureIdentities are the names simple signatures vouch for: the
// SignIdentity (else the destination's registry name), and each additional
// tag that is a registry name.
func signatureIdentities(dest types.ImageReference, opts CommitOptions) ([]reference.Named, error) {
	first := opts.SignIdentity
	if first == nil {
		first = dest.DockerReference()
	}
	if first == nil {
		return nil, fmt.Errorf("signing an image written to a %s: destination, which has no registry name: set SignIdentity: %w", dest.Transport().Name(), ErrInvalidOptions)
	}
	ids := []reference.Named{first}
	switch dest.Transport().Name() {
	case "docker", is.Transport.Name():
		for _, tag := range opts.AdditionalTags {
			named, err := reference.ParseNormalizedNamed(tag)
			if err != nil {
				return nil, fmt.Errorf("additional tag %q: %w (%w)", tag, ErrInvalidOptions, err)
			}
			ids = append(ids, reference.TagNameOnly(named))
		}
	}
	return ids, nil
}

// signManifest makes a simple signature of manifest for each identity.
func signManifest(manifest []byte, signer *openPGPSigner, identities []reference.Named) ([][]byte, error) {
	var sigs [][]byte
	for _, id := range identities {
		sig, err := signature.SignDockerManifest(manifest, id.String(), signer, signer.fingerprint())
		if err != nil {
			return nil, fmt.Errorf("signing the manifest as %s: %w", id, err)
		}
		sigs = append(sigs, sig)
	}
	return sigs, nil
}

// GetSignatures returns the simple signatures Commit made of the manifest,
// if any.
func (p preparedSource) GetSignatures(ctx context.Context, instanceDigest *digest.Digest) ([][]byte, error) {
	if instanceDigest != nil {
		return nil, fmt.Errorf("signatures of %s: container %s has a single image", *instanceDigest, p.ref.builder.ContainerName())
	}
	return p.ref.signatures, nil
}

// openPGPSigning prepares the simple signatures of
// CommitOptions.SignByOpenPGPKeyFile: it reads the key and works out the
// identities now, so that a bad key or destination fails before anything is
// exported, and returns the function that signs the manifest (nil when
// there is no key file).
func openPGPSigning(dest types.ImageReference, opts CommitOptions) (func(manifest []byte) ([][]byte, error), error) {
	if opts.SignByOpenPGPKeyFile == "" {
		return nil, nil
	}
	identities, err := signatureIdentities(dest, opts)
	if err != nil {
		return nil, err
	}
	signer, err := loadOpenPGPSigner(opts.SignByOpenPGPKeyFile, opts.SignPassphrase)
	if err != nil {
		return nil, err
	}
	return func(manifest []byte) ([][]byte, error) {
		return signManifest(manifest, signer, identities)
	}, nil
}

// checkSigstoreKey opens the sigstore private key a commit is to sign with,
// so that a missing key or a wrong passphrase fails the commit before
// anything is exported or uploaded: copy.Image opens it only after the
// export, when layers may have been uploaded ahead.
func checkSigstoreKey(opts CommitOptions) error {
	if opts.SignBySigstorePrivateKeyFile == "" {
		return nil
	}
	signer, err := sigstore.NewSigner(sigstore.WithPrivateKeyFile(opts.SignBySigstorePrivateKeyFile, opts.SignSigstorePrivateKeyPassphrase))
	if err != nil {
		return fmt.Errorf("sigstore signing key %s: %w", opts.SignBySigstorePrivateKeyFile, err)
	}
	return signer.Close()
}
