#!/usr/bin/env bash
# Container start and `ps`, berth vs podman (runc, cgroupfs), side by side in one run:
#   1. `run --rm --network none IMAGE true`          (target: berth <= 0.25 x podman)
#   2. 30 x `run -d --network none IMAGE sleep 1000`, then `ps`  (target: berth <= 0.3 x podman)
#   3. memory of berth's per-container monitor vs podman's conmon (RSS and PSS)
# Needs root, hyperfine, podman, busybox-static and a built berth (BERTH=..., default
# target/release/berth). Env: RUNS (default 30), N (containers for ps, default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
N=${N:-30}
BERTH=${BERTH:-$PWD/target/release/berth}
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 2; }
for t in hyperfine podman busybox; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install $t)" >&2; exit 2; }
done
[[ -x $BERTH ]] || { echo "build berth first: cargo build --release -p berth" >&2; exit 2; }
if ! grep -qs 'runtime *= *"runc"' /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n' \
    >/etc/containers/containers.conf
fi

WORK=$(mktemp -d /tmp/berth-bench.XXXXXX)
export BERTH_ROOT=$WORK/root
IMG=localhost/berth-bench-run:latest
PFX=bbench$$
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

echo "== run --rm --network none IMAGE true"
hyperfine -N -w 3 -r "$RUNS" --export-json "$WORK/run.json" \
  -n berth "$BERTH run --rm --network none $IMG true" \
  -n podman "podman run --rm --network none $IMG true"

echo "== $N detached containers, then ps"
for i in $(seq 1 "$N"); do
  "$BERTH" run -d --network none --name "$PFX$i" "$IMG" sleep 1000 >/dev/null
  podman run -d --network none --name "$PFX$i" "$IMG" sleep 1000 >/dev/null
done
hyperfine -N -w 3 -r "$RUNS" --export-json "$WORK/ps.json" \
  -n "berth ps" "$BERTH ps" -n "podman ps" "podman ps"

mem() { # pgrep arguments -> "avg_rss_kib avg_pss_kib count"
  local rss=0 pss=0 n=0 p
  for p in $(pgrep "$@"); do
    local r s
    r=$(awk '/^VmRSS/{print $2}' /proc/$p/status 2>/dev/null) || true
    s=$(awk '/^Pss:/{print $2}' /proc/$p/smaps_rollup 2>/dev/null) || true
    [[ -n $r && -n $s ]] || continue
    rss=$((rss + r)) pss=$((pss + s)) n=$((n + 1))
  done
  ((n)) && echo "$((rss / n)) $((pss / n)) $n" || echo "0 0 0"
}
# berth's monitor is `berth-supervise` while the container runs (`berth __monitor` only
# around starts and exits, or when berth-supervise is not installed).
if pgrep -x berth-supervise >/dev/null; then
  read -r brss bpss bn < <(mem -x berth-supervise)
else
  read -r brss bpss bn < <(mem -f "__monitor")
fi
read -r crss cpss cn < <(mem -x conmon)
echo "== per-container monitor memory (KiB, average)"
printf '%-14s RSS %6s  PSS %6s  (%s processes)\n' "berth monitor" "$brss" "$bpss" "$bn" "conmon" "$crss" "$cpss" "$cn"

python3 - "$WORK/run.json" "$WORK/ps.json" <<'PY'
import json, sys
for f, label in zip(sys.argv[1:], ["run --rm true", "ps with containers"]):
    r = {x["command"]: x for x in json.load(open(f))["results"]}
    b, p = [v["median"] for v in r.values()]
    print(f"{label:22} berth {b*1000:7.1f} ms  podman {p*1000:7.1f} ms  ratio {b/p:.3f}")
PY
