#!/usr/bin/env bash
# examples/lamp with images already built: warm `compose up -d` until the first good page,
# and `compose down`; berth vs podman-compose (on podman: runc, cgroupfs), side by side.
# Target: berth <= 0.3 x the faster peer's median.
# Measured 2026-11-29 (debug berth, 5 runs): up-to-page berth 0.86 s vs podman-compose 4.64 s
# (0.19); down 1.87 s vs 3.29 s (0.57: both wait for Apache and MariaDB to shut down).
# Needs root, hyperfine, podman, podman-compose and its DNS plugin
# (golang-github-containernetworking-plugin-dnsname, else the web container cannot resolve
# the database by name), curl, debootstrap (or BASE_TAR, a tar of a
# debootstrapped bookworm), network access to Debian's mirror for the first builds, and a
# built berth (BERTH=..., default target/release/berth). Env: RUNS (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
BERTH=${BERTH:-$PWD/target/release/berth}
BASE_TAR=${BASE_TAR:-/var/cache/berth-test/bookworm-minbase.tar}
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 2; }
for t in hyperfine podman podman-compose curl; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install $t)" >&2; exit 2; }
done
[[ -x $BERTH ]] || { echo "build berth first: cargo build --release -p berth" >&2; exit 2; }
if ! grep -qs 'runtime *= *"runc"' /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n' \
    >/etc/containers/containers.conf
fi

WORK=$(mktemp -d /tmp/berth-bench-compose.XXXXXX)
export BERTH_ROOT=$WORK/root
P_BERTH=$((20000 + RANDOM % 5000)); P_PODMAN=$((P_BERTH + 1))
cp -a examples/lamp "$WORK/berth"; cp -a examples/lamp "$WORK/podman"
for d in berth podman; do
  # Ports of this run (the process environment overrides .env).
  sed -i "s/^HOST_MACHINE_UNSECURE_HOST_PORT=.*/HOST_MACHINE_UNSECURE_HOST_PORT=$([[ $d == berth ]] && echo $P_BERTH || echo $P_PODMAN)/; s/^HOST_MACHINE_SECURE_HOST_PORT=.*/HOST_MACHINE_SECURE_HOST_PORT=$((P_PODMAN + $([[ $d == berth ]] && echo 1 || echo 2)))/; s/^HOST_MACHINE_MYSQL_PORT=.*/HOST_MACHINE_MYSQL_PORT=$((P_PODMAN + $([[ $d == berth ]] && echo 3 || echo 4)))/" "$WORK/$d/.env"
done
cleanup() {
  (cd "$WORK/berth" && "$BERTH" compose down >/dev/null 2>&1) || true
  (cd "$WORK/podman" && podman-compose down >/dev/null 2>&1) || true
  grep " $WORK" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

BERTH=$BERTH BASE_TAR=$BASE_TAR examples/setup-base.sh
podman image exists localhost/berth-examples/bookworm:12 || podman import -q "$BASE_TAR" localhost/berth-examples/bookworm:12 >/dev/null
echo "== building images (once)"
(cd "$WORK/berth" && "$BERTH" compose build >/dev/null 2>&1)
(cd "$WORK/podman" && podman-compose build >/dev/null 2>&1)

page() { # port -> wait (bounded: 60 s, 5 s per request) for the page that lists the database rows
  local end=$((SECONDS + 60))
  while ((SECONDS < end)); do
    curl -sf -m 5 "http://127.0.0.1:$1/" 2>/dev/null | grep -q "hello from mariadb" && return 0
    sleep 0.05
  done
  echo "no page on port $1" >&2; return 1
}
export -f page
# First start initialises the database directories (not measured).
(cd "$WORK/berth" && "$BERTH" compose up -d >/dev/null 2>&1 && page $P_BERTH && "$BERTH" compose down >/dev/null 2>&1)
(cd "$WORK/podman" && podman-compose up -d >/dev/null 2>&1 && page $P_PODMAN && podman-compose down >/dev/null 2>&1)

# hyperfine runs --prepare before every timed run (one --prepare for all commands here).
DOWN_ALL="cd $WORK/berth && $BERTH compose down >/dev/null 2>&1; cd $WORK/podman && podman-compose down >/dev/null 2>&1; true"
UP_ALL="cd $WORK/berth && $BERTH compose up -d >/dev/null 2>&1 && page $P_BERTH; cd $WORK/podman && podman-compose up -d >/dev/null 2>&1 && page $P_PODMAN"
echo "== up -d until the first good page"
hyperfine -S bash -w 1 -r "$RUNS" --export-json "$WORK/up.json" --prepare "$DOWN_ALL" \
  -n berth "cd $WORK/berth && $BERTH compose up -d >/dev/null 2>&1 && page $P_BERTH" \
  -n podman-compose "cd $WORK/podman && podman-compose up -d >/dev/null 2>&1 && page $P_PODMAN"
echo "== down"
hyperfine -S bash -w 1 -r "$RUNS" --export-json "$WORK/down.json" --prepare "$UP_ALL" \
  -n berth "cd $WORK/berth && $BERTH compose down >/dev/null 2>&1" \
  -n podman-compose "cd $WORK/podman && podman-compose down >/dev/null 2>&1"

ratio() {
  python3 - "$1" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
b, p = r["berth"], r["podman-compose"]
print(f"  berth {b*1000:.0f} ms, podman-compose {p*1000:.0f} ms: ratio {b/p:.2f} (target <= 0.30)")
PY
}
echo "== medians"
echo "up -d to first page:"; ratio "$WORK/up.json"
echo "down:"; ratio "$WORK/down.json"
