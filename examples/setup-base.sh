#!/usr/bin/env bash
# The examples' base image: a minimal Debian bookworm made with debootstrap (no registry is
# needed), imported into berth as berth-examples/bookworm:12. Idempotent; run as root.
# Packages for the examples come from Debian's mirror during their builds.
# BASE_TAR=FILE keeps the debootstrapped root filesystem as a tar there and reuses it.
set -euo pipefail
IMAGE=${BASE_IMAGE:-berth-examples/bookworm:12}
BERTH=${BERTH:-berth}
if "$BERTH" image inspect "$IMAGE" >/dev/null 2>&1; then
  exit 0
fi
if [[ -n ${BASE_TAR:-} && -s $BASE_TAR ]]; then
  "$BERTH" import "$BASE_TAR" "$IMAGE" --change 'CMD ["bash"]' >/dev/null
  echo "setup-base: imported $IMAGE from $BASE_TAR"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "setup-base: install debootstrap (apt-get install debootstrap)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase bookworm "$work/rootfs" >"$work/debootstrap.log" 2>&1 || {
  tail -20 "$work/debootstrap.log" >&2
  exit 1
}
# Images start without the host's apt caches and logs.
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
"$BERTH" import "$work/rootfs.tar" "$IMAGE" --change 'CMD ["bash"]' >/dev/null
if [[ -n ${BASE_TAR:-} ]]; then
  mkdir -p "$(dirname "$BASE_TAR")"
  mv "$work/rootfs.tar" "$BASE_TAR.tmp" && mv "$BASE_TAR.tmp" "$BASE_TAR"
fi
echo "setup-base: imported $IMAGE"
