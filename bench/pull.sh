#!/usr/bin/env bash
# Pull benchmark: `berth pull` vs `podman pull` of a Debian bookworm minbase image (one gzip
# layer) from a docker-registry on 127.0.0.1, each from an empty store, with hyperfine.
# Also compares berth with `gzip -dc LAYER > /dev/null` on the same layer (the limit to approach).
#
# Usage: bench/pull.sh            (as root; needs network access to a Debian mirror)
# Env:   BERTH=path/to/berth      (default: target/release/berth, built if missing)
#        RUNS=5                   hyperfine runs per command
#        MIRROR=http://deb.debian.org/debian
#        ROOTFS_TAR=file.tar      reuse a tarred minbase rootfs instead of running debootstrap
#        SETTLE=30                seconds to let the filesystem settle before timing
# Everything it creates (registry process, stores, temp files) is removed on exit.
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-5}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
BERTH=${BERTH:-$HERE/target/release/berth}

if [ "$(id -u)" != 0 ]; then
  echo "bench/pull.sh: run as root (debootstrap, podman and berth stores need it)" >&2
  exit 1
fi

need=()
command -v podman >/dev/null || need+=(podman)
command -v hyperfine >/dev/null || need+=(hyperfine)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
command -v runc >/dev/null || need+=(runc)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null
fi
if [ ! -x "$BERTH" ]; then
  echo "== building berth (release)"
  (cd "$HERE" && cargo build --release -p berth)
fi

WORK=$(mktemp -d /tmp/berth-pullbench.XXXXXX)
REG_PID=
cleanup() {
  set +e
  if [ -n "$REG_PID" ]; then
    kill "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
  fi
  # podman's overlay storage may hold mounts; unmount anything under WORK before removing it.
  if [ -d "$WORK" ]; then
    { grep -o " $WORK[^ ]*" /proc/self/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT INT TERM

echo "== building the image (debootstrap --variant=minbase bookworm)"
if [ -n "${ROOTFS_TAR:-}" ]; then
  cp "$ROOTFS_TAR" "$WORK/layer.tar"
else
  debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
    tail -20 "$WORK/debootstrap.log" >&2
    exit 1
  }
  tar --numeric-owner --sort=name --xattrs -C "$WORK/rootfs" -cf "$WORK/layer.tar" .
  rm -rf "$WORK/rootfs"
fi
gzip -6 -n -c "$WORK/layer.tar" >"$WORK/layer.tar.gz"

python3 - "$WORK" <<'PY'
import hashlib, json, os, shutil, sys
w = sys.argv[1]
def sha(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return "sha256:" + h.hexdigest()
os.makedirs(f"{w}/oci/blobs/sha256")
def put(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    open(f"{w}/oci/blobs/sha256/{d[7:]}", "wb").write(data)
    return d
diff = sha(f"{w}/layer.tar")
blob = sha(f"{w}/layer.tar.gz")
shutil.copyfile(f"{w}/layer.tar.gz", f"{w}/oci/blobs/sha256/{blob[7:]}")
size = os.path.getsize(f"{w}/layer.tar.gz")
cfg = json.dumps({
    "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
    "config": {"Cmd": ["bash"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
    "rootfs": {"type": "layers", "diff_ids": [diff]},
}).encode()
c = put(cfg)
man = json.dumps({
    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": len(cfg)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob, "size": size}],
}).encode()
m = put(man)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
           "digest": m, "size": len(man), "annotations": {"org.opencontainers.image.ref.name": "bookworm"}}]},
          open(f"{w}/oci/index.json", "w"))
open(f"{w}/oci/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
rm -f "$WORK/layer.tar"
LAYER_BYTES=$(stat -c %s "$WORK/layer.tar.gz")

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$WORK/registry.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry
http:
  addr: 127.0.0.1:$PORT
  secret: berth-bench
YML
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
IMAGE=127.0.0.1:$PORT/bench/debian:bookworm
skopeo copy --quiet --dest-tls-verify=false "oci:$WORK/oci:bookworm" "docker://$IMAGE"
rm -rf "$WORK/oci"

# podman: its own config (runc, cgroupfs, no default ulimits) and storage under WORK.
cat >"$WORK/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
cat >"$WORK/registries.conf" <<CONF
[[registry]]
location = "127.0.0.1:$PORT"
insecure = true
CONF
export CONTAINERS_CONF=$WORK/containers.conf CONTAINERS_REGISTRIES_CONF=$WORK/registries.conf
PODMAN="podman --root $WORK/podman-root --runroot $WORK/podman-run --tmpdir $WORK/podman-tmp --storage-driver overlay"
BERTH_STORE=$WORK/berth-root
# Each run starts from an empty store. The previous store is renamed into trash/ instead of
# deleted: on ext4, creating files right after deleting thousands of others makes the inode
# allocator skip "recently deleted" inodes one by one, which would measure the deletion rather
# than the pull. The trash is removed on exit.
mkdir -p "$WORK/trash"
fresh() { for d in "$@"; do [ -e "$d" ] && mv "$d" "$(mktemp -u "$WORK/trash/XXXXXXXX")"; done; true; }
export -f fresh
export WORK

echo "== image: $IMAGE, one gzip layer of $LAYER_BYTES bytes; berth: $BERTH"
# Sanity: both pull it.
BERTH_ROOT=$BERTH_STORE "$BERTH" pull -q "$IMAGE" >/dev/null
$PODMAN pull -q "$IMAGE" >/dev/null

# On these VMs, ext4 file creation is many times slower for a while after many files were
# deleted (e.g. a previous benchmark's cleanup, or debootstrap's own churn): let it settle.
sync
sleep "${SETTLE:-30}"
hyperfine --style basic --shell bash --warmup 1 --runs "$RUNS" --export-json "$WORK/pull.json" \
  --prepare "fresh $BERTH_STORE; sync" -n "berth pull" "BERTH_ROOT=$BERTH_STORE $BERTH pull -q $IMAGE" \
  --prepare "fresh $WORK/podman-root $WORK/podman-run $WORK/podman-tmp; sync" -n "podman pull" "$PODMAN pull -q $IMAGE"
hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$WORK/gzip.json" \
  -n "gzip -dc" "gzip -dc $WORK/layer.tar.gz > /dev/null"

python3 - "$WORK" "$LAYER_BYTES" <<'PY'
import json, sys
w, size = sys.argv[1], int(sys.argv[2])
res = {r["command"]: r for r in json.load(open(f"{w}/pull.json"))["results"]}
res.update({r["command"]: r for r in json.load(open(f"{w}/gzip.json"))["results"]})
b, p, g = (res[k]["median"] for k in ("berth pull", "podman pull", "gzip -dc"))
mb = size / 1e6
print()
print(f"layer: {mb:.1f} MB gzip")
print(f"berth pull   median {b:7.3f} s  ({mb / b:6.1f} MB/s compressed)")
print(f"podman pull  median {p:7.3f} s  ({mb / p:6.1f} MB/s compressed)")
print(f"gzip -dc     median {g:7.3f} s  ({mb / g:6.1f} MB/s compressed)")
print(f"berth / podman = {b / p:.3f}   (target <= 0.3)")
print(f"berth / gzip -dc = {b / g:.3f}   (1.0 = as fast as decompressing alone)")
PY
