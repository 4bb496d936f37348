#!/usr/bin/env bash
# `run --rm IMAGE true` with default bridge networking: berth vs podman (netavark), side by side
# in one hyperfine run. Prints both means and the ratio berth/podman (target: <= 0.25).
#
# Needs root, hyperfine, podman (apt-get install podman), busybox (static) and a built berth
# (BERTH=path, default target/release/berth, else target/debug/berth).
# Env: RUNS (default 30), WARMUP (default 3), IMAGE_HELPER (see below).
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
WARMUP=${WARMUP:-3}
if [[ -z "${BERTH:-}" ]]; then
  if [[ -x target/release/berth ]]; then BERTH=$PWD/target/release/berth; else BERTH=$PWD/target/debug/berth; fi
fi
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 2; }
for t in hyperfine podman busybox; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install $t)" >&2; exit 2; }
done
[[ -x $BERTH ]] || { echo "build berth first: cargo build --release -p berth" >&2; exit 2; }

# podman as configured for the comparison: runc, cgroupfs, no default ulimits.
CONF=/etc/containers/containers.conf
if ! grep -qs 'runtime *= *"runc"' "$CONF"; then
  [[ -e $CONF ]] && cp "$CONF" "$CONF.bak.$$"
  mkdir -p /etc/containers
  cat >"$CONF" <<'EOF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
  echo "wrote $CONF"
fi

WORK=$(mktemp -d /tmp/berth-bench.XXXXXX)
export BERTH_ROOT=$WORK/root
mkdir -p "$BERTH_ROOT"
# Own prefix and subnet so the benchmark never meets another store's bridge.
printf 'prefix = bbn\nbridge_subnet = 10.213.250.0/24\npool = 10.214.250.0/24\n' >"$BERTH_ROOT/net.conf"
IMG=localhost/berth-bench-busybox:latest

cleanup() {
  "$BERTH" network reset >/dev/null 2>&1 || true
  grep " $WORK" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK"
  podman rmi -f "$IMG" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# A busybox root filesystem, imported into podman, saved as docker-archive, loaded into berth.
mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/etc" "$WORK/rootfs/tmp"
cp "$(command -v busybox)" "$WORK/rootfs/bin/busybox"
for a in sh true; do ln -s busybox "$WORK/rootfs/bin/$a"; done
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
podman import -q "$WORK/rootfs.tar" "$IMG" >/dev/null
podman save -q --format docker-archive -o "$WORK/image.tar" "$IMG"
# IMAGE_HELPER ROOT ROOTFS_TAR REF: optional way to create the berth image (before load exists).
if [[ -n "${IMAGE_HELPER:-}" ]]; then "$IMAGE_HELPER" "$BERTH_ROOT" "$WORK/rootfs.tar" "$IMG" >/dev/null; fi
if ! "$BERTH" run --rm "$IMG" true >/dev/null 2>&1; then
  "$BERTH" load -i "$WORK/image.tar" >/dev/null ||
    "$BERTH" import "$WORK/rootfs.tar" "$IMG" >/dev/null || {
      echo "berth cannot load images yet (load/import)" >&2
      exit 1
    }
fi

# Sanity: both networked runs work.
"$BERTH" run --rm "$IMG" true
podman run --rm --network bridge "$IMG" true

hyperfine -N ${HYPERFINE_ARGS:-} --warmup "$WARMUP" --runs "$RUNS" --export-csv "$WORK/res.csv" \
  -n berth "$BERTH run --rm $IMG true" \
  -n podman "podman run --rm --network bridge $IMG true"

awk -F, 'NR>1 { m[$1]=$2 } END {
  printf "berth  mean %.1f ms\npodman mean %.1f ms\nratio berth/podman = %.3f (target <= 0.25)\n",
    m["berth"]*1000, m["podman"]*1000, m["berth"]/m["podman"] }' "$WORK/res.csv"
