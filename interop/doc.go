// Package interop holds integration tests only: every image bricklayer
// commits, to every transport, is read back by tools bricklayer did not
// write (skopeo, umoci, crane, buildah and docker-registry), validated
// against the OCI image-spec JSON schemas, unpacked and compared file by
// file with the working container it came from.
//
// The tests skip with a message when a tool is missing or when they do not
// run as root (they give files to other owners); .ci/run installs the tools.
package interop
