#!/usr/bin/env bash
# Run the engine's and the network code's unit tests as an unprivileged user (nobody), to
# prove they need no root: build the test binaries as the caller, then run each one as
# uid/gid 65534 with a private HOME and TMPDIR it can write.
set -euo pipefail
cd "$(dirname "$0")/.."
# cargo names each test binary on stderr: "Executable unittests src/lib.rs (target/debug/deps/…)".
bins=$(cargo test -p berth-engine -p berth-net --lib --no-run 2>&1 |
  sed -n 's/^ *Executable unittests .*(\(.*\))$/\1/p')
[[ -n $bins ]] || { echo "no unit test binaries were built" >&2; exit 1; }
work=$(mktemp -d /tmp/berth-unpriv.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"
for b in $bins; do
  # The binary may sit under a root-only directory: run a copy nobody can read.
  cp "$b" "$work/"
  exe="$work/$(basename "$b")"
  chmod 0755 "$exe"
  home="$work/home-$(basename "$b")"
  mkdir -p "$home"
  chown 65534:65534 "$home"
  echo "== $(basename "$b") as nobody"
  (cd "$home" && env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$home" TMPDIR="$home" \
    setpriv --reuid=65534 --regid=65534 --clear-groups -- "$exe" --test-threads=2)
done
