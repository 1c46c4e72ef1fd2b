package bricklayer

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
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
			"docker": {reg.addr: signature.PolicyRequirements{req}},
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
	reg := startRegistry(t, t.TempDir())
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
		AdditionalTags:                   []string{reg.addr + "/signed:2"},
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

// writeOpenPGPKey makes an OpenPGP key and writes its private half,
// armored and encrypted with passphrase, to dir/NAME.key and its public
// half to dir/NAME.pub.
func writeOpenPGPKey(t *testing.T, dir, name, passphrase string) (private, public string) {
	t.Helper()
	e, err := openpgp.NewEntity("bricklayer test "+name, "", name+"@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	if err := e.Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	if err := e.EncryptPrivateKeys([]byte(passphrase), nil); err != nil {
		t.Fatal(err)
	}
	var priv bytes.Buffer
	w, err := armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SerializePrivateWithoutSigning(w, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	private, public = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	if err := os.WriteFile(private, priv.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(public, pub.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return private, public
}

// TestCommitSimpleSignature signs at commit with an OpenPGP key file (the
// way that works without gpgme), pushes to a registry whose simple
// signatures go to a lookaside directory, and reads the image back under a
// policy requiring the key (allowed, for the name and the additional tag)
// and one requiring another key (refused).
func TestCommitSimpleSignature(t *testing.T) {
	reg := startRegistry(t, t.TempDir())
	env := newTestEnv(t)
	sys, lookaside := reg.withSignatureStorage(t, reg.sys(t, env.sys))
	keys := t.TempDir()
	signerKey, signerPub := writeOpenPGPKey(t, keys, "signer", "pass phrase")
	_, otherPub := writeOpenPGPKey(t, keys, "other", "x")
	requireKey := func(pub string) signature.PolicyRequirement {
		t.Helper()
		req, err := signature.NewPRSignedByKeyPath(signature.SBKeyTypeGPGKeys, pub, signature.NewPRMMatchRepoDigestOrExact())
		if err != nil {
			t.Fatal(err)
		}
		return req
	}

	b, _ := env.newFilledBuilder(t, "work", 22)
	signed := reg.ref(t, "simple:1")
	opts := CommitOptions{
		SystemContext:        sys,
		SignByOpenPGPKeyFile: signerKey,
		SignPassphrase:       "pass phrase",
		AdditionalTags:       []string{reg.addr + "/simple:2"},
	}
	res, err := b.Commit(env.ctx, signed, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res, checkImageWith(t, signed, sys, wantImage{Layers: 1}))
	sigs, _ := filepath.Glob(filepath.Join(lookaside, "simple@sha256="+res.ManifestDigest.Encoded(), "signature-*"))
	if len(sigs) != 2 {
		t.Errorf("lookaside holds signatures %v, want one for each of the two names", sigs)
	}
	for _, ref := range []types.ImageReference{signed, reg.ref(t, "simple:2")} {
		if err := readBackUnder(t, env, reg, sys, ref, requireKey(signerPub)); err != nil {
			t.Errorf("reading %s back under a policy requiring the signer's key: %v", ref.StringWithinTransport(), err)
		}
		if err := readBackUnder(t, env, reg, sys, ref, requireKey(otherPub)); !rejected(err) {
			t.Errorf("reading %s back under a policy requiring another key: %v, want a rejection", ref.StringWithinTransport(), err)
		}
	}

	// Failures before anything is written: a wrong passphrase, a
	// destination without a registry name, one that keeps no signatures.
	for _, tc := range []struct {
		name    string
		dest    func(dir string) types.ImageReference
		opts    CommitOptions
		mention string
	}{
		{"wrong-passphrase", func(string) types.ImageReference { return reg.ref(t, "failed:1") },
			CommitOptions{SignByOpenPGPKeyFile: signerKey, SignPassphrase: "wrong"}, "decrypting"},
		{"no-passphrase", func(string) types.ImageReference { return reg.ref(t, "failed:1") },
			CommitOptions{SignByOpenPGPKeyFile: signerKey}, "encrypted"},
		{"oci-without-identity", func(dir string) types.ImageReference { return ociRef(t, dir, "x") },
			CommitOptions{SignByOpenPGPKeyFile: signerKey, SignPassphrase: "pass phrase"}, "SignIdentity"},
		{"oci-keeps-no-signatures", func(dir string) types.ImageReference { return ociRef(t, dir, "x") },
			CommitOptions{SignByOpenPGPKeyFile: signerKey, SignPassphrase: "pass phrase", SignIdentity: signed.DockerReference()}, "signatures"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := env.dir(t, "out")
			tc.opts.SystemContext = sys
			if _, err := b.Commit(env.ctx, tc.dest(dir), tc.opts); err == nil || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("commit: %v, want an error mentioning %q", err, tc.mention)
			}
			assertAbsent(t, dir)
		})
	}
	if slices.ContainsFunc(reg.requests(t), func(r string) bool {
		return strings.Contains(r, "/v2/failed/") && !strings.HasPrefix(r, "GET") && !strings.HasPrefix(r, "HEAD")
	}) {
		t.Error("a commit whose signing failed wrote to the registry")
	}
}
