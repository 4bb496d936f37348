#!/usr/bin/env bash
# The Docker Engine API: the docker CLI against `berth system service` vs against
# `podman system service`, side by side in one run (runc, cgroupfs for podman):
#   1. `docker run --rm --network none IMAGE true`           (target: berth <= 0.3 x podman)
#   2. `docker ps` with N (default 30) running containers      (target: berth <= 0.2 x podman)
#   3. idle memory of each service (RSS/PSS after the runs)    (target: berth <= 0.5 x podman)
# Needs root, hyperfine, podman, docker (the CLI), busybox-static and a built berth
# (BERTH=..., default target/release/berth). Env: RUNS (default 20), N (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
N=${N:-30}
BERTH=${BERTH:-$PWD/target/release/berth}
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 2; }
for t in hyperfine podman docker busybox; do
  command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 2; }
done
[[ -x $BERTH ]] || { echo "build berth first: cargo build --release -p berth -p berth-supervise" >&2; exit 2; }
if ! grep -qs 'runtime *= *"runc"' /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n' \
    >/etc/containers/containers.conf
fi

WORK=$(mktemp -d /tmp/berth-bench-api.XXXXXX)
export BERTH_ROOT=$WORK/root
mkdir -p "$BERTH_ROOT"
printf 'prefix = bbapi\nbridge_subnet = 10.219.249.0/24\npool = 10.220.249.0/24\n' >"$BERTH_ROOT/net.conf"
IMG=localhost/berth-bench-api:latest
PFX=berth-bench-api-
BSOCK=$WORK/berth.sock
PSOCK=$WORK/podman.sock
BPID= PPID_=
cleanup() {
  DOCKER_HOST=unix://$BSOCK docker ps -aq 2>/dev/null | xargs -r env DOCKER_HOST=unix://$BSOCK docker rm -f >/dev/null 2>&1 || true
  podman ps -aq --filter "name=^$PFX" 2>/dev/null | xargs -r podman rm -f -t 0 >/dev/null 2>&1 || true
  [[ -n $BPID ]] && kill "$BPID" 2>/dev/null || true
  [[ -n $PPID_ ]] && kill "$PPID_" 2>/dev/null || true
  sleep 0.5
  "$BERTH" network reset >/dev/null 2>&1 || true
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

"$BERTH" system service --time 0 "unix://$BSOCK" &
BPID=$!
podman system service --time 0 "unix://$PSOCK" &
PPID_=$!
for s in "$BSOCK" "$PSOCK"; do
  for _ in $(seq 1 100); do [[ -S $s ]] && break; sleep 0.1; done
done
DB="env DOCKER_HOST=unix://$BSOCK docker"
DP="env DOCKER_HOST=unix://$PSOCK docker"

echo "== docker run --rm --network none IMAGE true"
hyperfine -N -w 3 -r "$RUNS" --export-json "$WORK/run.json" \
  -n berth "$DB run --rm --network none $IMG true" \
  -n podman "$DP run --rm --network none $IMG true"

echo "== docker ps with $N running containers"
for i in $(seq 1 "$N"); do
  $DB run -d --network none --name "$PFX$i" "$IMG" sleep 1000 >/dev/null
  $DP run -d --network none --name "$PFX$i" "$IMG" sleep 1000 >/dev/null
done
hyperfine -N -w 3 -r "$RUNS" --export-json "$WORK/ps.json" \
  -n "berth ps" "$DB ps" -n "podman ps" "$DP ps"

sleep 2
mem() { echo "$(awk '/^VmRSS/{print $2}' /proc/$1/status) $(awk '/^Pss:/{print $2}' /proc/$1/smaps_rollup)"; }
read -r brss bpss < <(mem "$BPID")
read -r prss ppss < <(mem "$PPID_")
echo "== idle service memory (KiB)"
printf '%-16s RSS %7s  PSS %7s\n' "berth service" "$brss" "$bpss" "podman service" "$prss" "$ppss"

python3 - "$WORK/run.json" "$WORK/ps.json" "$bpss" "$ppss" <<'PY'
import json, sys
for f, label in zip(sys.argv[1:3], ["docker run --rm true", "docker ps (N running)"]):
    r = {x["command"]: x for x in json.load(open(f))["results"]}
    b, p = [v["median"] for v in r.values()]
    print(f"{label:24} berth {b*1000:7.1f} ms  podman {p*1000:7.1f} ms  ratio {b/p:.3f}")
b, p = int(sys.argv[3]), int(sys.argv[4])
print(f"{'idle service PSS':24} berth {b:7d} KiB podman {p:7d} KiB ratio {b/p:.3f}")
PY
