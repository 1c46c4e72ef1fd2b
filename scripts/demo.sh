#!/bin/sh
# demo.sh [BIN]: make an image from testdata/demo with the bricklayer CLI,
# into an OCI layout (demo/layout) and into an embedded store of its own
# (demo/storage, demo/run), and show what was made. Everything it writes is
# under ./demo, which it removes first. Run from the repository's top
# directory; `make demo` builds BIN (bin/bricklayer) and runs this.
set -eu

BIN=${1:-bin/bricklayer}
DEMO=$PWD/demo
export BRICKLAYER_ROOT="$DEMO"   # the embedded store: demo/storage and demo/run

# Bold command lines on a terminal only.
if [ -t 1 ]; then B=$(printf '\033[1m') N=$(printf '\033[0m'); else B= N=; fi

# show CMD...: print a command as a user would type it, then run it.
show() {
	line='$ bricklayer'
	for a in "$@"; do
		case $a in
		*[!A-Za-z0-9_./:=,+-]*) line="$line '$a'" ;;
		*) line="$line $a" ;;
		esac
	done
	printf '\n%s%s%s\n' "$B" "$line" "$N"
	"$BIN" "$@"
}

rm -rf "$DEMO"
mkdir -p "$DEMO"

# The image's program: a static binary, so the image needs nothing else.
CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags='-s -w' -o "$DEMO/hello" ./testdata/demo/hello

printf '%s$ ctr=$(bricklayer from scratch)%s\n' "$B" "$N"
ctr=$("$BIN" from scratch)
echo "$ctr"
show copy "$ctr" testdata/demo/rootfs /
show copy --chmod 755 "$ctr" demo/hello /usr/bin/hello
show config "$ctr" --cmd '["/usr/bin/hello"]' --env GREETING=Hello \
	--label org.opencontainers.image.title=bricklayer-demo --port 8080
show commit "$ctr" oci:demo/layout:latest
show commit "$ctr" bricklayer-demo
show images
show inspect oci:demo/layout:latest
show rm "$ctr"

printf '\nThe image is in demo/layout (an OCI layout) and in the store under demo/storage.\n'
if command -v podman >/dev/null 2>&1; then
	printf 'Run it: podman run --rm oci:demo/layout:latest\n'
fi
