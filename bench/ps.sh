#!/usr/bin/env bash
# Listing and observing, berth vs podman (runc, cgroupfs), side by side in one run:
#   1. `ps --format '{{.Names}}'` with N (default 100) running containers
#      (target: berth <= 0.2 x podman)
#   2. `stats --no-stream` with S (default 30) running containers (target: berth <= 0.2 x podman)
# Needs root, hyperfine, podman, busybox-static and a built berth (BERTH=..., default
# target/release/berth). Env: RUNS (default 20), N, S.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
N=${N:-100}
S=${S:-30}
BERTH=${BERTH:-$PWD/target/release/berth}
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 2; }
for t in hyperfine podman busybox jq; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install $t)" >&2; exit 2; }
done
[[ -x $BERTH ]] || { echo "build berth first: cargo build --release -p berth" >&2; exit 2; }
if ! grep -qs 'runtime *= *"runc"' /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n' \
    >/etc/containers/containers.conf
fi

WORK=$(mktemp -d /tmp/berth-bench-ps.XXXXXX)
export BERTH_ROOT=$WORK/root
IMG=localhost/berth-bench-ps:latest
PFX=bbps$$
cleanup() {
  "$BERTH" ps -aq 2>/dev/null | xargs -r "$BERTH" rm -f >/dev/null 2>&1 || true
  podman ps -aq --filter "name=^$PFX" 2>/dev/null | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
  grep " $WORK" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK"
  podman rmi -f "$IMG" >/dev/null 2>&1 || true
}
trap cleanup EXIT

mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/etc" "$WORK/rootfs/tmp"
cp "$(command -v busybox)" "$WORK/rootfs/bin/busybox"
for a in sh true sleep; do ln -s busybox "$WORK/rootfs/bin/$a"; done
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
podman import -q "$WORK/rootfs.tar" "$IMG" >/dev/null
"$BERTH" import "$WORK/rootfs.tar" "$IMG" >/dev/null

start() { # first last
  for i in $(seq "$1" "$2"); do
    "$BERTH" run -d --network none --name "$PFX$i" "$IMG" sleep 3000 >/dev/null
    podman run -d --network none --name "$PFX$i" "$IMG" sleep 3000 >/dev/null
  done
}

ratio() { # json -> prints the berth/podman ratio of medians
  jq -r '.results as $r | "berth median \($r[0].median*1000|floor) ms, podman median \($r[1].median*1000|floor) ms, ratio \(($r[0].median/$r[1].median*1000|floor)/1000)"' "$1"
}

echo "== stats --no-stream with $S containers"
start 1 "$S"
hyperfine -N -w 2 -r "$RUNS" --export-json "$WORK/stats.json" \
  -n "berth stats" "$BERTH stats --no-stream" -n "podman stats" "podman stats --no-stream"
ratio "$WORK/stats.json"

echo "== ps --format '{{.Names}}' with $N containers"
start $((S + 1)) "$N"
hyperfine -N -w 3 -r "$RUNS" --export-json "$WORK/ps.json" \
  -n "berth ps" "$BERTH ps --format {{.Names}}" -n "podman ps" "podman ps --format {{.Names}}"
ratio "$WORK/ps.json"
