#!/usr/bin/env bash
# Apptainer's workflow on berth, side by side in one run:
#   1. `./x.sif true` as root and as an unprivileged user vs `podman run --rm` of the same root
#      file system                                                (target: berth <= 0.25 x podman)
#   2. rebuild of an unchanged definition whose %post installs packages (debootstrap from
#      Debian's mirror) vs the same build from scratch           (target: <= 0.05 x)
# Needs root, hyperfine, podman, busybox-static, squashfs-tools, debootstrap and a built berth
# (BERTH=..., default target/release/berth). Env: RUNS (default 30); NO_MIRROR=1 skips part 2.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
BERTH=${BERTH:-$PWD/target/release/berth}
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 2; }
for t in hyperfine podman busybox mksquashfs; do
  command -v "$t" >/dev/null || { echo "missing $t (see scripts/setup.sh)" >&2; exit 2; }
done
[[ -x $BERTH ]] || { echo "build berth first: cargo build --release -p berth" >&2; exit 2; }
if ! grep -qs 'runtime *= *"runc"' /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\n' \
    >/etc/containers/containers.conf
fi

WORK=$(mktemp -d /tmp/berth-bench-sif.XXXXXX)
chmod 755 "$WORK"
export BERTH_ROOT=$WORK/root
IMG=localhost/berth-bench-sif:latest
USR=bsifb$$
cleanup() {
  userdel "$USR" >/dev/null 2>&1 || true
  groupdel "$USR" >/dev/null 2>&1 || true
  grep " $WORK" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK"
  podman rmi -f "$IMG" >/dev/null 2>&1 || true
}
trap cleanup EXIT

mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/etc" "$WORK/rootfs/tmp" "$WORK/bin"
cp "$(command -v busybox)" "$WORK/rootfs/bin/busybox"
for a in sh true sleep id cat echo; do ln -s busybox "$WORK/rootfs/bin/$a"; done
tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
podman import -q "$WORK/rootfs.tar" "$IMG" >/dev/null
"$BERTH" import "$WORK/rootfs.tar" "$IMG" >/dev/null
ln -s "$BERTH" "$WORK/bin/run-singularity"
printf 'Bootstrap: localimage\nFrom: %s\n\n%%runscript\n    exec "$@"\n' "$IMG" >"$WORK/x.def"
"$BERTH" sif build "$WORK/x.sif" "$WORK/x.def" 2>/dev/null
useradd -M -U -s /bin/sh -d "$WORK/home" "$USR"
mkdir -p "$WORK/home" && chown "$USR:" "$WORK/home"
PATH=$WORK/bin:$PATH
"$WORK/x.sif" true   # checks it runs once
runuser -u "$USR" -- env HOME="$WORK/home" PATH="$PATH" "$WORK/x.sif" true  # (extracts once)

echo "== ./x.sif true (root) vs podman run --rm --network none IMAGE true"
hyperfine -N -w 3 -r "$RUNS" --export-json "$WORK/root.json" \
  -n "berth ./x.sif (root)" "$WORK/x.sif true" \
  -n podman "podman run --rm --network none $IMG true"
echo "== ./x.sif true (unprivileged user)"
runuser -u "$USR" -- env HOME="$WORK/home" PATH="$PATH" \
  hyperfine -N -w 3 -r "$RUNS" --export-json "$WORK/home/user.json" -n "berth ./x.sif (user)" "$WORK/x.sif true"
cp "$WORK/home/user.json" "$WORK/user.json"

if [[ -z ${NO_MIRROR:-} ]]; then
  cat >"$WORK/deb.def" <<'EOF'
Bootstrap: debootstrap
OSVersion: bookworm
MirrorURL: http://deb.debian.org/debian/

%post
    apt-get update
    apt-get -y install cowsay

%runscript
    exec /usr/games/cowsay "$@"
EOF
  echo "== build with %post installing packages: from scratch (--disable-cache) vs unchanged rebuild"
  "$BERTH" sif build --force "$WORK/deb.sif" "$WORK/deb.def" 2>/dev/null  # fills the cache; checks it builds
  "$WORK/deb.sif" moo >/dev/null
  hyperfine -N -r 1 --export-json "$WORK/scratch.json" -n "from scratch" \
    "$BERTH sif build --force --disable-cache $WORK/deb.sif $WORK/deb.def"
  hyperfine -N -w 1 -r 5 --export-json "$WORK/rebuild.json" -n "unchanged rebuild" \
    "$BERTH sif build --force $WORK/deb.sif $WORK/deb.def"
fi

python3 - "$WORK" <<'PY'
import json, os, sys
w = sys.argv[1]
def med(f, name=None):
    r = json.load(open(os.path.join(w, f)))["results"]
    return {x["command"]: x["median"] for x in r}
root = med("root.json")
p = root["podman"]
b = root["berth ./x.sif (root)"]
u = med("user.json")["berth ./x.sif (user)"]
print(f"./x.sif true root     berth {b*1000:7.1f} ms  podman {p*1000:7.1f} ms  ratio {b/p:.3f}")
print(f"./x.sif true user     berth {u*1000:7.1f} ms  podman {p*1000:7.1f} ms  ratio {u/p:.3f}")
if os.path.exists(os.path.join(w, "rebuild.json")):
    s = med("scratch.json")["from scratch"]
    r = med("rebuild.json")["unchanged rebuild"]
    print(f"build                 rebuild {r:7.2f} s  scratch {s:7.2f} s  ratio {r/s:.3f}")
PY
