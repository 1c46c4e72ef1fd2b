package bricklayer

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/directory"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/signature/sigstore"
	"go.podman.io/image/v5/types"
)

// readBackUnder copies ref to a dir: (dropping signatures, which only the
// policy needs) under a policy with req for the registry and reject for
// everything else, and returns the copy's error.
func readBackUnder(t *testing.T, env *testEnv, reg *testRegistry, sys *types.SystemContext, ref types.ImageReference, req signature.PolicyRequirement) error {
	t.Helper()
	policy := &signature.Policy{
		Default: signature.PolicyRequirements{signature.NewPRReject()},
		Transports: map[string]signature.PolicyTransportScopes{
			"docker": {reg.host: signature.PolicyRequirements{req}},
			"dir":    {"": signature.PolicyRequirements{signature.NewPRInsecureAcceptAnything()}},
		},
	}
	pc, err := signature.NewPolicyContext(policy)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Destroy()
	dest, err := directory.NewReference(env.dir(t, "readback"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = copy.Image(env.ctx, pc, dest, ref, &copy.Options{SourceCtx: sys, DestinationCtx: sys, RemoveSignatures: true})
	return err
}

// rejected reports whether err is the signature policy's refusal.
func rejected(err error) bool {
	var pe signature.PolicyRequirementError
	return errors.As(err, &pe)
}

// TestCommitSigstoreSignature commits to a registry with a sigstore
// signature from a private key, stored as an OCI attachment, and reads the
// image back under a policy that requires that key's signature (allowed)
// and under one that requires another key (refused). An image pushed
// without a signature is refused too.
func TestCommitSigstoreSignature(t *testing.T) {
	reg := startRegistry(t)
	env := newTestEnv(t)
	sys, _ := reg.withSignatureStorage(t, reg.sys(t, env.sys))
	keys := t.TempDir()
	passphrase := []byte("correct horse")
	var pubKeys []string
	for _, name := range []string{"signer", "other"} {
		pair, err := sigstore.GenerateKeyPair(passphrase)
		if err != nil {
			t.Fatal(err)
		}
		for suffix, data := range map[string][]byte{".key": pair.PrivateKey, ".pub": pair.PublicKey} {
			if err := os.WriteFile(filepath.Join(keys, name+suffix), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		pubKeys = append(pubKeys, filepath.Join(keys, name+".pub"))
	}
	requireKey := func(pub string) signature.PolicyRequirement {
		t.Helper()
		req, err := signature.NewPRSigstoreSigned(signature.PRSigstoreSignedWithKeyPath(pub), signature.PRSigstoreSignedWithSignedIdentity(signature.NewPRMMatchRepoDigestOrExact()))
		if err != nil {
			t.Fatal(err)
		}
		return req
	}

	b, _ := env.newFilledBuilder(t, "work", 21)
	signed := reg.ref(t, "signed:1")
	res, err := b.Commit(env.ctx, signed, CommitOptions{
		SystemContext:                    sys,
		SignBySigstorePrivateKeyFile:     filepath.Join(keys, "signer.key"),
		SignSigstorePrivateKeyPassphrase: passphrase,
		AdditionalTags:                   []string{reg.host + "/signed:2"},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, checkImageWith(t, signed, sys, wantImage{Layers: 1}))
	// The signature is an attachment in the registry, tagged after the
	// manifest digest.
	attachment := "PUT /v2/signed/manifests/sha256-" + res.ManifestDigest.Encoded() + ".sig"
	if !slices.ContainsFunc(reg.requests(t), func(r string) bool { return strings.HasPrefix(r, attachment) }) {
		t.Errorf("no request %s in the registry's log", attachment)
	}

	for _, ref := range []types.ImageReference{signed, reg.ref(t, "signed:2")} {
		if err := readBackUnder(t, env, reg, sys, ref, requireKey(pubKeys[0])); err != nil {
			t.Errorf("reading %s back under a policy requiring the signer's key: %v", ref.StringWithinTransport(), err)
		}
		if err := readBackUnder(t, env, reg, sys, ref, requireKey(pubKeys[1])); !rejected(err) {
			t.Errorf("reading %s back under a policy requiring another key: %v, want a rejection", ref.StringWithinTransport(), err)
		}
	}

	unsigned := reg.ref(t, "unsigned:1")
	if _, err := b.Commit(env.ctx, unsigned, CommitOptions{SystemContext: sys}); err != nil {
		t.Fatal(err)
	}
	checkImageWith(t, unsigned, sys, wantImage{Layers: 1})
	if err := readBackUnder(t, env, reg, sys, unsigned, requireKey(pubKeys[0])); !rejected(err) {
		t.Errorf("reading an unsigned image back under a policy requiring a signature: %v, want a rejection", err)
	}

	// A wrong passphrase fails before anything is pushed.
	failed := reg.ref(t, "failed:1")
	if _, err := b.Commit(env.ctx, failed, CommitOptions{SystemContext: sys, SignBySigstorePrivateKeyFile: filepath.Join(keys, "signer.key"), SignSigstorePrivateKeyPassphrase: []byte("wrong")}); err == nil {
		t.Error("signing with a wrong passphrase succeeded")
	}
	if slices.ContainsFunc(reg.requests(t), func(r string) bool {
		return strings.Contains(r, "/v2/failed/") && !strings.HasPrefix(r, "GET") && !strings.HasPrefix(r, "HEAD")
	}) {
		t.Error("a commit whose signing failed wrote to the registry")
	}
}
