#!/usr/bin/env bash
# `run` with one named volume, berth vs podman (runc, cgroupfs), side by side in one run:
#   hyperfine of `run --rm --network none -v benchvol:/data IMAGE true`   (target: berth <= 0.25 x podman)
# The volume exists beforehand in both (created by a first run, which also copies the image's
# /data into it). Needs root, hyperfine, podman, busybox-static and a built berth (BERTH=...,
# default target/release/berth). Env: RUNS (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
BERTH=${BERTH:-$PWD/target/release/berth}
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 2; }
for t in hyperfine podman busybox; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install $t)" >&2; exit 2; }
done
[[ -x $BERTH ]] || { echo "build berth first: cargo build --release -p berth -p berth-supervise" >&2; exit 2; }
if ! grep -qs 'runtime *= *"runc"' /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n' \
    >/etc/containers/containers.conf
fi

WORK=$(mktemp -d /tmp/berth-bench-vol.XXXXXX)
export BERTH_ROOT=$WORK/root
IMG=localhost/berth-bench-volume:latest
VOL=bvol$$
cleanup() {
  "$BERTH" volume rm -f "$VOL" >/dev/null 2>&1 || true
  podman volume rm -f "$VOL" >/dev/null 2>&1 || true
  grep " $WORK" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK"
  podman rmi -f "$IMG" >/dev/null 2>&1 || true
}
trap cleanup EXIT

mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/etc" "$WORK/rootfs/tmp" "$WORK/rootfs/data"
cp "$(command -v busybox)" "$WORK/rootfs/bin/busybox"
for a in sh true sleep; do ln -s busybox "$WORK/rootfs/bin/$a"; done
for i in $(seq 1 20); do echo "file $i" >"$WORK/rootfs/data/f$i"; done
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
podman import -q "$WORK/rootfs.tar" "$IMG" >/dev/null
"$BERTH" import "$WORK/rootfs.tar" "$IMG" >/dev/null
"$BERTH" run --rm --network none -v "$VOL:/data" "$IMG" true
podman run --rm --network none -v "$VOL:/data" "$IMG" true
[[ $("$BERTH" run --rm --network none -v "$VOL:/data" "$IMG" sh -c 'ls /data | wc -l') == 20 ]] \
  || { echo "berth: copy-up did not fill the volume" >&2; exit 1; }

echo "== run --rm --network none -v $VOL:/data IMAGE true"
hyperfine -N -w 3 -r "$RUNS" --export-json "$WORK/vol.json" \
  -n berth "$BERTH run --rm --network none -v $VOL:/data $IMG true" \
  -n podman "podman run --rm --network none -v $VOL:/data $IMG true"
python3 - "$WORK/vol.json" <<'PY'
import json, sys
r = [x["median"] for x in json.load(open(sys.argv[1]))["results"]]
print(f"run with a named volume   berth {r[0]*1000:7.1f} ms  podman {r[1]*1000:7.1f} ms  ratio {r[0]/r[1]:.3f}  (target <= 0.25)")
PY
