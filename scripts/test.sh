#!/usr/bin/env bash
# Run the whole test suite (unit + root integration tests). Needs root and scripts/setup.sh's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${CI:-} == true ]] || ! command -v skopeo >/dev/null || ! command -v nft >/dev/null; then
  # On a fresh machine, install what the tests need (no-op when already there).
  BERTH_SETUP_NO_RUN=1 scripts/setup.sh
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# RustSec advisories (cargo audit) when the tool and a database are here; skipped, saying so, if not.
scripts/advisories.sh
# Unit tests of the engine and the network code must pass without root.
scripts/unit-unprivileged.sh
# Integration tests start containers, registries and networks; two at a time keeps them fast
# on small machines without starving each other.
cargo test --workspace --no-fail-fast -- --test-threads=2
