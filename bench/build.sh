#!/usr/bin/env bash
# `build`, berth vs podman (buildah), side by side in one run, on the same context:
# a Dockerfile of FROM a local base, COPY of a 2,000-file source tree, three RUNs with
# busybox sh, ENV and CMD.
#   1. first build (--no-cache: every step runs)         target: berth <= 0.5 x podman
#   2. no-change rebuild                                   target: berth <= 0.1 x podman
#   3. rebuild after changing one copied file             target: berth <= 0.3 x podman
# Needs root, hyperfine, podman, busybox-static and a built berth (BERTH=..., default
# target/release/berth). Env: RUNS (default 10), FILES (default 2000), NET (default none).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
FILES=${FILES:-2000}
NET=${NET:-none}
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

WORK=$(mktemp -d /tmp/berth-bench-build.XXXXXX)
export BERTH_ROOT=$WORK/root
BASE=localhost/berth-bench-build-base:latest
IMG=localhost/berth-bench-build:latest
cleanup() {
  grep " $WORK" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK"
  podman rmi -f "$IMG" "$BASE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# The base image: busybox-static.
mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/etc" "$WORK/rootfs/tmp"
cp "$(command -v busybox)" "$WORK/rootfs/bin/busybox"
for a in sh cat ls wc echo; do ln -s busybox "$WORK/rootfs/bin/$a"; done
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
podman import -q "$WORK/rootfs.tar" "$BASE" >/dev/null
"$BERTH" import "$WORK/rootfs.tar" "$BASE" >/dev/null

# The context: FILES small source files in a few directories.
CTX=$WORK/ctx
mkdir -p "$CTX/src"
for i in $(seq 1 "$FILES"); do
  d=$CTX/src/d$((i % 20))
  [[ -d $d ]] || mkdir -p "$d"
  printf 'file %d\nsome source text for file %d\n' "$i" "$i" >"$d/f$i.txt"
done
cat >"$CTX/Dockerfile" <<DF
FROM $BASE
COPY src/ /app/src/
RUN ls -R /app/src | wc -l > /app/count
RUN cat /app/src/d1/f1.txt > /app/first
RUN echo done > /app/done
ENV APP=bench
CMD ["cat", "/app/count"]
DF
CHANGE=$CTX/src/d7/f7.txt

B="$BERTH build -q --network $NET -t $IMG $CTX"
P="podman build -q --network $NET -t $IMG $CTX"

echo "== first build (--no-cache)"
hyperfine -N -w 1 -r "$RUNS" --export-json "$WORK/first.json" \
  -n berth "$B --no-cache" -n podman "$P --no-cache"

echo "== no-change rebuild"
$B >/dev/null && $P >/dev/null
hyperfine -N -w 1 -r "$RUNS" --export-json "$WORK/nochange.json" -n berth "$B" -n podman "$P"

echo "== rebuild after changing one copied file"
hyperfine -w 1 -r "$RUNS" --export-json "$WORK/change.json" \
  --prepare "date +%s%N > $CHANGE" -n berth "$B" -n podman "$P"

python3 - "$WORK/first.json" "$WORK/nochange.json" "$WORK/change.json" <<'PY'
import json, sys
targets = [0.5, 0.1, 0.3]
for f, label, t in zip(sys.argv[1:], ["first build", "no-change rebuild", "one file changed"], targets):
    r = {x["command"]: x for x in json.load(open(f))["results"]}
    b, p = r["berth"]["median"], r["podman"]["median"]
    ok = "ok" if b / p <= t else "MISSED"
    print(f"{label:20} berth {b*1000:8.1f} ms  podman {p*1000:8.1f} ms  ratio {b/p:.3f} (target <= {t}: {ok})")
PY
