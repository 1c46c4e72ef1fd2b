#!/usr/bin/env bash
# bench.sh - `make bench`: our Go benchmarks, then bricklayer commit timed
# beside buildah commit on the same containers with ../shared/bench/peer.sh,
# a commit on a base image of 4 layers, and a sweep of commit time against
# layer size, plotted.
#
# usage: scripts/bench.sh [STEP ...]        (default: all of them, in order)
#   go      go test -bench: Commit per destination and compression, the
#           4-layer base, the in-process floor (root package), the
#           export pipeline alone (internal/layerexport), and our tree
#           walks beside containers/storage's (internal/treetar)
#   peer    peer.sh setup + commit (ours beside buildah) + limits + gobench
#           on $WORKLOADS
#   floor   our CLI committing each workload to oci:, interleaved run by run
#           with the in-process floor on the same tree (ours/floor ratios)
#   base4   a buildah image of 4 layers in the peer store, a container on it
#           adding a fifth, both tools committing it (peer.sh commit)
#   again   both tools committing the base4 container into an OCI layout
#           that holds an earlier commit of it (base layers there already),
#           and into a new layout, ours with a --blob-cache that an earlier
#           commit filled
#   overlay the peer and base4 workloads again in a store of the overlay
#           driver ($BENCH_WORK/store-overlay): peer.sh setup + commit on
#           $OVERLAY_WORKLOADS, where a new layer is its upper directory;
#           and ovdiff, a container on the Debian rootfs (as an image) that
#           adds a copy of /usr, deletes two trees (whiteouts) and makes
#           /etc/apt again (an opaque directory)
#   journal the containers-storage target again, with the store on an ext4
#           filesystem that has a journal (a loop-mounted image file under
#           $BENCH_WORK): without one, as on this project's machine, ext4
#           passes over every inode freed in the last minutes, and peer.sh
#           removes the previous run's image right before each run
#   sweep   commit time against layer size for both tools: one mktree.sh tree
#           per size in $SWEEP_SIZES, peer.sh setup + commit on them
#   plot    $BENCH_OUT/sweep.png from $BENCH_OUT/sweep.tsv (gnuplot)
#
# Environment (all optional):
#   SHARED=../shared           the shared directory, relative to the repo root
#                              (in CI shared/ sits beside the clone)
#   BENCH_WORK=/tmp/bench-work peer.sh's work directory: trees, store, outputs
#   BENCH_OUT=bench-out/<UTC time>   where this run's results go
#   RUNS=3 WARMUP=1            timed and untimed runs per peer.sh measurement
#   WORKLOADS="debian big"     peer step workloads (peer.sh's names)
#   TARGETS="oci-gzip oci-raw cs docker"   peer step targets
#   PEER_MODES="setup commit limits gobench"
#   GO_BENCH=.  GO_BENCHTIME=5x  BENCH_MIB=64   go step: -bench regexp,
#                              -benchtime, MiB in the benchmarks' trees
#   FLOOR_COMPRESSIONS="gzip none"  FLOOR_SINKS="discard file"   floor step
#   BASE4_MB=48                MiB of each of the base4 workload's 5 layers
#   BASE4_TARGETS="oci-gzip oci-raw"
#   OVERLAY_WORKLOADS="debian base4 ovdiff"  OVERLAY_TARGETS="oci-gzip oci-raw cs docker"
#                              (base4 and ovdiff: $BASE4_TARGETS)
#   JOURNAL_WORKLOADS=$WORKLOADS  JOURNAL_TARGETS=cs  JOURNAL_GB=8 (image size)
#   SWEEP_SIZES="1 8 64 256"   MB per layer; the full sweep is
#                              "1 8 64 256 1024 2048" (size 1024 reuses the
#                              big workload when $BENCH_WORK/tree-big exists)
#   SWEEP_TARGETS="oci-gzip"   SWEEP_RUNS=$RUNS
#   INSTALL=1                  0: never apt-get install missing tools
#
# Needs root (buildah on a vfs store). Missing Debian tools (buildah, time,
# docker-registry, gnuplot, debootstrap, pigz, zstd) are installed with
# apt-get as .ci/run installs its tools; without buildah the peer, floor, base4
# and sweep steps are skipped.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SHARED=${SHARED:-../shared}
PEER=$SHARED/bench/peer.sh
MKTREE=$SHARED/bench/mktree.sh
export BENCH_WORK=${BENCH_WORK:-/tmp/bench-work}
BENCH_OUT=${BENCH_OUT:-bench-out/$(date -u +%Y%m%dT%H%M%SZ)}
export RUNS=${RUNS:-3} WARMUP=${WARMUP:-1}
WORKLOADS=${WORKLOADS:-debian big}
TARGETS=${TARGETS:-oci-gzip oci-raw cs docker}
PEER_MODES=${PEER_MODES:-setup commit limits gobench}
GO_BENCH=${GO_BENCH:-.}
GO_BENCHTIME=${GO_BENCHTIME:-5x}
BENCH_MIB=${BENCH_MIB:-64}
FLOOR_COMPRESSIONS=${FLOOR_COMPRESSIONS:-gzip none}
FLOOR_SINKS=${FLOOR_SINKS:-discard file}
BASE4_MB=${BASE4_MB:-48}
BASE4_TARGETS=${BASE4_TARGETS:-oci-gzip oci-raw}
OVERLAY_WORKLOADS=${OVERLAY_WORKLOADS:-debian base4 ovdiff}
OVERLAY_TARGETS=${OVERLAY_TARGETS:-oci-gzip oci-raw cs docker}
JOURNAL_WORKLOADS=${JOURNAL_WORKLOADS:-$WORKLOADS}
JOURNAL_TARGETS=${JOURNAL_TARGETS:-cs}
JOURNAL_GB=${JOURNAL_GB:-8}
SWEEP_SIZES=${SWEEP_SIZES:-1 8 64 256}
SWEEP_TARGETS=${SWEEP_TARGETS:-oci-gzip}
SWEEP_RUNS=${SWEEP_RUNS:-$RUNS}
INSTALL=${INSTALL:-1}
BIN=$ROOT/bin/bricklayer
PEER_STORAGE=(--root "$BENCH_WORK/store" --runroot "$BENCH_WORK/run" --storage-driver vfs)
PEER_BUILDAH=(buildah "${PEER_STORAGE[@]}")
OVERLAY_STORE=$BENCH_WORK/store-overlay OVERLAY_RUNROOT=$BENCH_WORK/run-overlay
export GOFLAGS="-buildvcs=false -tags=containers_image_openpgp,exclude_graphdriver_btrfs"

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

[ -f "$PEER" ] && [ -f "$MKTREE" ] || die "no $PEER or $MKTREE (set SHARED to the shared directory)"
PEER=$(cd "$(dirname "$PEER")" && pwd)/peer.sh
MKTREE=$(cd "$(dirname "$MKTREE")" && pwd)/mktree.sh
mkdir -p "$BENCH_OUT"
BENCH_OUT=$(cd "$BENCH_OUT" && pwd)

# ensure_tools CMD:PKG ... installs the missing ones, as .ci/run does.
ensure_tools() {
  local need=() pair cmd pkg
  for pair in "$@"; do
    cmd=${pair%%:*} pkg=${pair#*:}
    if [ "$cmd" = time ]; then [ -x /usr/bin/time ] || need+=("$pkg"); continue; fi
    command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  if [ "$INSTALL" != 1 ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    note "missing ${need[*]} (not installing: INSTALL=$INSTALL, uid $(id -u))"
    return 0
  fi
  note "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || note "apt-get install ${need[*]} failed"
}

have_buildah() {
  command -v buildah >/dev/null 2>&1 && return 0
  note "buildah is not installed: skipping $1"
  return 1
}

# buildah_wrapper: peer.sh checks `buildah containers ... | grep -qx NAME`
# under pipefail; when grep quits at its match while buildah still writes,
# buildah dies of SIGPIPE and the container looks missing. The wrapper
# answers `containers` ignoring SIGPIPE and execs buildah for everything
# else.
buildah_wrapper() {
  local w=$BENCH_OUT/.buildah-wrapper
  cat > "$w" <<EOF
#!/usr/bin/env bash
for a; do
  if [ "\$a" = containers ]; then
    out=\$(${BUILDAH:-buildah} "\$@") || exit
    trap '' PIPE  # bash writes stdout line by line: a reader gone early is no failure
    printf '%s\\n' "\$out" 2>/dev/null
    exit 0
  fi
done
exec ${BUILDAH:-buildah} "\$@"
EOF
  chmod +x "$w"
  echo "$w"
}

# peer [VAR=VALUE ...] -- MODE ...: peer.sh with our CLI beside buildah
peer() {
  local -a envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  [ -n "$BUILT" ] || step_build
  env OURS_COMMIT="$BIN commit" BUILDAH="$(buildah_wrapper)" "${envs[@]}" bash "$PEER" "$@"
}

machine() {
  {
    echo "date: $(date -u +%FT%TZ)"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
    echo "cpu: $(nproc) x $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
    echo "memory: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "kernel: $(uname -r)"
    echo "go: $(go version)"
    echo "buildah: $(buildah --version 2>/dev/null || echo none)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "filesystem of $BENCH_WORK: $(df -hT "$BENCH_WORK" 2>/dev/null | awk 'NR==2{print $2, $3 " total,", $5 " free"}')"
  } > "$BENCH_OUT/machine.txt"
  cat "$BENCH_OUT/machine.txt" >&2
}

BUILT=
step_build() {
  note "building $BIN"
  go build -o "$BIN" ./cmd/bricklayer
  BUILT=1
}

step_go() {
  note "go test -bench '$GO_BENCH' -benchtime $GO_BENCHTIME -bench.mib=$BENCH_MIB -> $BENCH_OUT/go-bench.txt"
  go test -run '^$' -bench "$GO_BENCH" -benchtime "$GO_BENCHTIME" -benchmem -count 1 -timeout 2h \
    . ./internal/layerexport ./internal/treetar -bench.mib="$BENCH_MIB" | tee "$BENCH_OUT/go-bench.txt"
}

step_peer() {
  have_buildah "peer.sh" || return 0
  note "peer.sh $PEER_MODES on $WORKLOADS -> $BENCH_OUT/peer.txt"
  # shellcheck disable=SC2086  # mode list
  peer WORKLOADS="$WORKLOADS" TARGETS="$TARGETS" -- $PEER_MODES | tee "$BENCH_OUT/peer.txt"
}

# The base4 workload: trees $BENCH_WORK/tree-base4/l1..l5, images
# localhost/bench-base4:1..4 (l1, l1+l2, ...), container bench-wl-base4 on
# image 4 with l5 copied in, in the store that buildah's storage options
# (default: the peer store's) name. Its tar size (peer.sh's MB/s) is the
# five layers', all of which a commit to oci: exports.
BASE4_DIR=$BENCH_WORK/tree-base4

# listed WHAT NAME BUILDAH...: whether `BUILDAH WHAT` (containers or images)
# lists NAME, a container's name or an image's name:tag. grep reads to the
# end (no -q), so that buildah gets no SIGPIPE under pipefail.
listed() {
  local what=$1 name=$2 fmt='{{.ContainerName}}'
  shift 2
  [ "$what" = containers ] || fmt='{{.Name}}:{{.Tag}}'
  "$@" "$what" --format "$fmt" | grep -x -- "$name" >/dev/null
}

base4_container() {
  local dir=$BASE4_DIR i from=scratch
  local -a bb=("${PEER_BUILDAH[@]}")
  [ $# -eq 0 ] || bb=(buildah "$@")
  export BUILDAH_ISOLATION=chroot
  for i in 1 2 3 4 5; do
    [ -d "$dir/l$i" ] || { mkdir -p "$dir"; SIZE_MB=$BASE4_MB SEED=base4-$i sh "$MKTREE" "$dir/l$i"; }
  done
  if ! listed containers bench-wl-base4 "${bb[@]}"; then
    for i in 1 2 3 4; do
      "${bb[@]}" from --name bench-base4-build "$from" >/dev/null
      "${bb[@]}" copy --quiet bench-base4-build "$dir/l$i" "/l$i" >/dev/null
      "${bb[@]}" commit -q --rm bench-base4-build "localhost/bench-base4:$i" >/dev/null
      from=localhost/bench-base4:$i
    done
    "${bb[@]}" from --name bench-wl-base4 "$from" >/dev/null
    "${bb[@]}" copy --quiet bench-wl-base4 "$dir/l5" /l5 >/dev/null
    note "container bench-wl-base4: 4 base layers + 1, $BASE4_MB MB each ($*)"
  fi
}

step_base4() {
  have_buildah "base4" || return 0
  base4_container
  note "peer.sh commit on base4 -> $BENCH_OUT/base4.txt"
  peer WORKLOADS=base4 WL_DIR_base4="$BASE4_DIR" TARGETS="$BASE4_TARGETS" -- commit | tee "$BENCH_OUT/base4.txt"
}

# timed CMD ...: CMD's wall time in seconds, its output discarded
timed() {
  local tf
  tf=$(mktemp)
  /usr/bin/time -f %e -o "$tf" "$@" >/dev/null
  tail -n1 "$tf"
  rm -f "$tf"
}

# The again step: the base4 container committed with gzip into an OCI
# layout that holds an earlier commit of it, a new tag each run, each tool
# into its own layout (filled by one untimed commit first), interleaved run
# by run. buildah compresses every layer again; bricklayer reads back the
# base layers the layout holds and compresses only the new one. Then each
# tool into a new layout every run, ours with a blob cache filled by one
# untimed commit: it takes the base layers' blobs from there.
step_again() {
  have_buildah "the again step" || return 0
  [ -n "$BUILT" ] || step_build
  base4_container
  local i ours theirs tsv=$BENCH_OUT/again.tsv
  local ol=$BENCH_WORK/out/again-ours bl=$BENCH_WORK/out/again-buildah
  rm -rf "$ol" "$bl"
  "$BIN" "${PEER_STORAGE[@]}" commit -q --compression=gzip bench-wl-base4 "oci:$ol:0" >/dev/null
  "${PEER_BUILDAH[@]}" commit -q --disable-compression=false bench-wl-base4 "oci:$bl:0" >/dev/null
  note "both tools committing base4 into a layout holding it, $RUNS runs -> $BENCH_OUT/again.txt"
  printf 'workload\tcompression\tdest\trun\tours_s\tbuildah_s\n' > "$tsv"
  for ((i = 1; i <= RUNS; i++)); do
    sync
    theirs=$(timed "${PEER_BUILDAH[@]}" commit -q --disable-compression=false bench-wl-base4 "oci:$bl:$i")
    sync
    ours=$(timed "$BIN" "${PEER_STORAGE[@]}" commit -q --compression=gzip bench-wl-base4 "oci:$ol:$i")
    printf 'base4\tgzip\tlayout\t%s\t%s\t%s\n' "$i" "$ours" "$theirs" >> "$tsv"
  done
  local cache=$BENCH_WORK/blob-cache
  rm -rf "$ol" "$bl" "$cache"
  "$BIN" "${PEER_STORAGE[@]}" commit -q --compression=gzip --blob-cache "$cache" bench-wl-base4 "oci:$ol:0" >/dev/null
  for ((i = 1; i <= RUNS; i++)); do
    rm -rf "$ol" "$bl"
    sync
    theirs=$(timed "${PEER_BUILDAH[@]}" commit -q --disable-compression=false bench-wl-base4 "oci:$bl:$i")
    sync
    ours=$(timed "$BIN" "${PEER_STORAGE[@]}" commit -q --compression=gzip --blob-cache "$cache" bench-wl-base4 "oci:$ol:$i")
    printf 'base4\tgzip\tcached\t%s\t%s\t%s\n' "$i" "$ours" "$theirs" >> "$tsv"
  done
  summarize "$tsv" "wl comp dest runs ours_s buildah_s ours/buildah" | tee "$BENCH_OUT/again.txt"
  rm -rf "$ol" "$bl" "$cache"
}

# ovdiff_container: in the overlay store, image localhost/bench-ovdiff-base
# (the Debian rootfs, committed by buildah) and container bench-wl-ovdiff
# on it, which adds /usr-copy (a copy of /usr), deletes /usr/share/doc and
# /usr/share/man (two whiteouts, which the kernel makes one inode) and
# deletes and makes again /etc/apt (an opaque directory). peer.sh's MB/s
# for it counts /usr's tar, most of the new layer.
ovdiff_container() {
  local -a bb=(buildah --root "$OVERLAY_STORE" --runroot "$OVERLAY_RUNROOT" --storage-driver overlay)
  local rootfs mp
  rootfs=$(wl_dir debian)
  [ -d "$rootfs/usr" ] || { note "no $rootfs (peer.sh setup makes it): skipping ovdiff"; return 1; }
  listed containers bench-wl-ovdiff "${bb[@]}" && return 0
  if ! listed images localhost/bench-ovdiff-base:latest "${bb[@]}"; then
    "${bb[@]}" from --name bench-ovdiff-build scratch >/dev/null
    "${bb[@]}" copy --quiet bench-ovdiff-build "$rootfs" / >/dev/null
    "${bb[@]}" commit -q --rm bench-ovdiff-build localhost/bench-ovdiff-base:latest >/dev/null
  fi
  "${bb[@]}" from --name bench-wl-ovdiff localhost/bench-ovdiff-base:latest >/dev/null
  mp=$("${bb[@]}" mount bench-wl-ovdiff)
  cp -a "$rootfs/usr" "$mp/usr-copy"
  rm -rf "$mp/usr/share/doc" "$mp/usr/share/man" "$mp/etc/apt"
  mkdir "$mp/etc/apt"
  "${bb[@]}" umount bench-wl-ovdiff >/dev/null
  note "container bench-wl-ovdiff: the Debian rootfs + a copy of /usr, two whiteouts, an opaque directory"
}

# The overlay step: the same workloads in a store of the overlay driver,
# where a container's changes are its layer's upper directory (the driver's
# native diff). peer.sh makes each workload's container there with
# `buildah from scratch` + `buildah copy` (a layer without a parent);
# base4's new layer has a parent, whose diff the driver makes from the
# upper directory too. Skipped where the kernel has no overlay filesystem.
step_overlay() {
  have_buildah "the overlay step" || return 0
  if ! grep -qw overlay /proc/filesystems && ! modprobe overlay 2>/dev/null; then
    note "no overlay filesystem here: skipping the overlay step"
    return 0
  fi
  local w wls="" base4= ovdiff=
  local -a envs=(STORAGE_DRIVER=overlay STORE="$OVERLAY_STORE" RUNROOT="$OVERLAY_RUNROOT")
  for w in $OVERLAY_WORKLOADS; do
    case $w in
      base4) base4=1 ;;
      ovdiff) ovdiff=1 ;;
      *) wls+=" $w" ;;
    esac
  done
  : > "$BENCH_OUT/overlay.txt"
  if [ -n "$wls" ]; then
    note "peer.sh setup + commit on$wls in an overlay store -> $BENCH_OUT/overlay.txt"
    peer "${envs[@]}" WORKLOADS="${wls# }" TARGETS="$OVERLAY_TARGETS" -- setup commit | tee -a "$BENCH_OUT/overlay.txt"
  fi
  if [ -n "$base4" ]; then
    base4_container --root "$OVERLAY_STORE" --runroot "$OVERLAY_RUNROOT" --storage-driver overlay
    note "peer.sh commit on base4 in an overlay store -> $BENCH_OUT/overlay.txt"
    peer "${envs[@]}" WORKLOADS=base4 WL_DIR_base4="$BASE4_DIR" TARGETS="$BASE4_TARGETS" -- commit | tee -a "$BENCH_OUT/overlay.txt"
  fi
  if [ -n "$ovdiff" ] && ovdiff_container; then
    note "peer.sh commit on ovdiff in an overlay store -> $BENCH_OUT/overlay.txt"
    peer "${envs[@]}" WORKLOADS=ovdiff WL_DIR_ovdiff="$(wl_dir debian)/usr" TARGETS="$BASE4_TARGETS" -- commit | tee -a "$BENCH_OUT/overlay.txt"
  fi
}

# The journal step: peer.sh setup + commit on $JOURNAL_WORKLOADS with the
# peer store on a new ext4 filesystem that has a journal, in a sparse image
# file loop-mounted under $BENCH_WORK, removed at the end. Without a journal
# ext4 does not reuse an inode freed in the last minutes, and checks each
# such inode's deletion time on its way to a free one, so that creating the
# files of a layer right after removing those of another slows down several
# times. peer.sh's containers-storage target does just that before every
# run.
step_journal() {
  have_buildah "the journal step" || return 0
  command -v mkfs.ext4 >/dev/null || { note "no mkfs.ext4: skipping the journal step"; return 0; }
  local img=$BENCH_WORK/journal-ext4.img mnt=$BENCH_WORK/journal-ext4
  if mountpoint -q "$mnt"; then umount "$mnt"; fi
  rm -f "$img"
  mkdir -p "$mnt"
  truncate -s "${JOURNAL_GB}G" "$img"
  mkfs.ext4 -q -F "$img"
  if ! mount -o loop "$img" "$mnt"; then
    rm -f "$img"
    note "cannot loop-mount $img: skipping the journal step"
    return 0
  fi
  note "peer.sh setup + commit on $JOURNAL_WORKLOADS ($JOURNAL_TARGETS), the store on a journaled ext4 -> $BENCH_OUT/journal.txt"
  local rc=0
  peer STORE="$mnt/store" RUNROOT="$mnt/run" WORKLOADS="$JOURNAL_WORKLOADS" TARGETS="$JOURNAL_TARGETS" -- setup commit |
    tee "$BENCH_OUT/journal.txt" || rc=$?
  umount "$mnt" && rm -f "$img" && rmdir "$mnt"
  return "$rc"
}

# wl_dir W: the tree of peer.sh workload W, as peer.sh finds it
wl_dir() {
  local v="WL_DIR_$1"
  if [ -n "${!v:-}" ]; then echo "${!v}"; return; fi
  case $1 in
    debian) echo "$BENCH_WORK/rootfs-debian" ;;
    big) echo "$BENCH_WORK/tree-big" ;;
    *) echo "$BENCH_WORK/tree-$1" ;;
  esac
}

# summarize TSV "HEADER": per key (the first three columns) of TSV, whose
# columns are key1 key2 key3 run a_s b_s, the run count and the medians of
# a, b and a/b (the median of the per-run ratios).
summarize() {
  # shellcheck disable=SC2086  # the header is a word list
  printf '%-8s %-6s %-8s %5s %8s %8s %10s\n' $2
  awk -F'\t' 'NR > 1 {k = $1 "\t" $2 "\t" $3; n[k]++; o[k, n[k]] = $5; f[k, n[k]] = $6; r[k, n[k]] = $5 / $6; if (!(k in seen)) { seen[k] = 1; keys[++nk] = k } }
    function med(a, k, m,   i, j, t, v) { for (i = 1; i <= m; i++) v[i] = a[k, i]
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
      return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2 }
    END { for (i = 1; i <= nk; i++) { k = keys[i]; split(k, p, "\t")
      printf "%-8s %-6s %-8s %5d %8.2f %8.2f %10.2f\n", p[1], p[2], p[3], n[k], med(o, k, n[k]), med(f, k, n[k]), med(r, k, n[k]) } }' "$1"
}

# The floor step: our CLI committing a peer.sh workload's container to oci:,
# run by run interleaved with the in-process floor (BenchmarkCommitFloor
# -bench.tree) on the same tree, per compression; the table gives the
# medians and the median of the per-run ratios ours/floor.
step_floor() {
  have_buildah "the floor step" || return 0
  [ -n "$BUILT" ] || step_build
  local test_bin=$ROOT/bin/bench.test w c sink i dir out ours floor tsv=$BENCH_OUT/floor.tsv
  note "building $test_bin"
  go test -c -o "$test_bin" .
  printf 'workload\tcompression\tsink\trun\tours_s\tfloor_s\n' > "$tsv"
  for w in $WORKLOADS; do
    dir=$(wl_dir "$w")
    out=$BENCH_WORK/out/floor-$w
    for c in $FLOOR_COMPRESSIONS; do
      for ((i = 1; i <= RUNS; i++)); do
        rm -rf "$out"; sync
        ours=$(timed "$BIN" "${PEER_STORAGE[@]}" commit -q --compression="$c" "bench-wl-$w" "oci:$out:latest")
        rm -rf "$out"
        for sink in $FLOOR_SINKS; do
          sync
          floor=$("$test_bin" -test.run '^$' -test.bench "^BenchmarkCommitFloor\$/$c/$sink\$" -test.benchtime 1x -bench.tree="$dir" |
            awk '/^BenchmarkCommitFloor/ {print $3 / 1e9}')
          printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$c" "$sink" "$i" "$ours" "$floor" >> "$tsv"
        done
      done
    done
  done
  summarize "$tsv" "wl comp floor runs ours_s floor_s ours/floor" | tee "$BENCH_OUT/floor.txt"
}

# sweep_workload N -> the peer.sh workload name for a tree of N MB
sweep_workload() {
  if [ "$1" = 1024 ] && [ -d "$BENCH_WORK/tree-big" ]; then echo big; else echo "size$1"; fi
}

step_sweep() {
  have_buildah "the sweep" || return 0
  local n w wls="" tsv=$BENCH_OUT/sweep.tsv
  local -a envs=()
  for n in $SWEEP_SIZES; do
    w=$(sweep_workload "$n")
    if [ "$w" != big ] && [ ! -d "$BENCH_WORK/tree-$w" ]; then
      note "mktree.sh SIZE_MB=$n -> $BENCH_WORK/tree-$w"
      SIZE_MB=$n SEED=1 sh "$MKTREE" "$BENCH_WORK/tree-$w"
    fi
    envs+=("WL_DIR_$w=$BENCH_WORK/tree-$w")
    wls+=" $w"
  done
  note "peer.sh setup + commit on$wls ($SWEEP_TARGETS) -> $BENCH_OUT/sweep.txt"
  peer "${envs[@]}" WORKLOADS="${wls# }" TARGETS="$SWEEP_TARGETS" RUNS="$SWEEP_RUNS" -- setup commit | tee "$BENCH_OUT/sweep.txt"
  # peer.sh's table: tool wl target fmt runs wall_s min-max MB/s rss_MB tmp_MB out_MB cpu_s ratio
  printf 'size_mb\ttar_mb\ttool\ttarget\twall_s\tmin_s\tmax_s\trss_mb\tratio\truns\n' > "$tsv"
  for n in $SWEEP_SIZES; do
    w=$(sweep_workload "$n")
    awk -v w="$w" -v n="$n" -v bytes="$(cat "$BENCH_WORK/.bytes-$w")" '
      $2 == w && $6 != "FAIL" && ($1 == "buildah" || $1 == "ours") {
        split($7, mm, "-")
        printf "%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n, bytes / 1e6, $1, $3, $6, mm[1], mm[2], $9, $13, $5
      }' "$BENCH_OUT/sweep.txt" >> "$tsv"
  done
  column -t "$tsv" >&2
}

step_plot() {
  local tsv=$BENCH_OUT/sweep.tsv png=$BENCH_OUT/sweep.png t tool dat label color runs plots="" rplots="" dt=0
  [ -s "$tsv" ] || { note "no $tsv: run the sweep step first"; return 0; }
  command -v gnuplot >/dev/null || { note "gnuplot is not installed: no plot"; return 0; }
  # one data file per tool and target: tar_mb wall_s min_s max_s ratio
  for t in $(awk -F'\t' 'NR > 1 {print $4}' "$tsv" | sort -u); do
    dt=$((dt + 1))
    for tool in buildah ours; do
      dat=$BENCH_OUT/sweep-$tool-$t.dat
      awk -F'\t' -v tool="$tool" -v t="$t" 'NR > 1 && $3 == tool && $4 == t {print $2, $5, $6, $7, $9}' "$tsv" | sort -g > "$dat"
      [ -s "$dat" ] || continue
      label=buildah color='#c0392b'
      [ "$tool" = ours ] && label=bricklayer color='#1f618d'
      plots+="${plots:+, }'$dat' using 1:2:3:4 with yerrorlines lw 2 lc rgb '$color' dt $dt pt $dt title '$label $t'"
      [ "$tool" = ours ] && rplots+="${rplots:+, }'$dat' using 1:5 with linespoints lw 2 lc rgb '$color' dt $dt pt $dt title 'bricklayer / buildah, $t'"
    done
  done
  [ -n "$plots" ] || { note "nothing to plot in $tsv"; return 0; }
  [ -n "$rplots" ] || rplots="1 with lines dashtype 2 lc rgb 'gray' notitle"
  runs=$(awk -F'\t' 'NR > 1 {print $10}' "$tsv" | sort -u | paste -sd/)
  gnuplot <<EOF
set terminal pngcairo size 900,900 font "sans,11"
set output '$png'
set multiplot layout 2,1 title "commit time against layer size ($(nproc) CPUs, vfs store, median of $runs; bars: min-max)"
set logscale xy
set grid
set key top left
set xlabel 'layer size (MB of uncompressed tar)'
set ylabel 'commit wall time (s)'
plot $plots
unset logscale y
set yrange [0:*]
set ylabel 'time ratio bricklayer / buildah'
set key top right
plot $rplots, 1 with lines dashtype 2 lc rgb 'gray' notitle
unset multiplot
EOF
  note "plot: $png"
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(go peer floor base4 again overlay journal sweep plot)
ensure_tools buildah:buildah time:time docker-registry:docker-registry gnuplot:gnuplot-nox \
  debootstrap:debootstrap pigz:pigz zstd:zstd
mkdir -p "$BENCH_WORK"
machine
for s in "${steps[@]}"; do
  case $s in
    go|peer|floor|base4|again|overlay|journal|sweep|plot) "step_$s" ;;
    *) die "unknown step $s (want go, peer, floor, base4, again, overlay, journal, sweep or plot)" ;;
  esac
done
note "results in $BENCH_OUT"
