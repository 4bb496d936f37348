#!/usr/bin/env bash
# Cross-check that berth builds for aarch64 (issue 7: "builds everywhere the runtime does").
#
#   1. `cargo check --workspace --all-targets --target aarch64-unknown-linux-gnu`: every crate,
#      test and bench type-checks for aarch64 (ring's build script needs the cross C compiler).
#   2. berth-supervise, the static libc-free half of the monitor with its own `_start` and a
#      per-architecture syscall table, is built in release and linked for aarch64; when
#      qemu-user is installed the binary is run once and must print its usage error (exit 125),
#      which exercises `_start`, argument parsing, write(2) and exit(2) on aarch64.
#
# Needs: `rustup target add aarch64-unknown-linux-gnu` (network access to rust-lang.org) and
# Debian's gcc-aarch64-linux-gnu and libc6-dev-arm64-cross; qemu-user optional. Not part of
# .ci/run (CI has no network for the rust target). Env: CARGO_TARGET_DIR (default
# target/cross, kept apart from the host build).
set -euo pipefail
cd "$(dirname "$0")/.."
T=aarch64-unknown-linux-gnu
rustup target list --installed 2>/dev/null | grep -qx "$T" ||
  { echo "cross-check: install the target first: rustup target add $T" >&2; exit 2; }
command -v aarch64-linux-gnu-gcc >/dev/null ||
  { echo "cross-check: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross" >&2; exit 2; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target/cross}
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
cargo check --workspace --all-targets --target "$T"
cargo build --release -p berth-supervise --target "$T"
sup=$CARGO_TARGET_DIR/$T/release/berth-supervise
file "$sup" 2>/dev/null || true
if command -v qemu-aarch64 >/dev/null; then
  set +e
  err=$(qemu-aarch64 "$sup" 2>&1)
  rc=$?
  set -e
  [[ $rc == 125 && $err == "berth-supervise: missing arguments; usage:"* ]] ||
    { echo "cross-check: aarch64 berth-supervise: exit $rc: $err" >&2; exit 1; }
  echo "cross-check: aarch64 berth-supervise runs under qemu-aarch64 (usage error, exit 125)"
fi
echo "cross-check: aarch64 ok"
